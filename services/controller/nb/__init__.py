"""The controller's access to the OVN Northbound database.

Desired rows are computed as plain data (`rows`), compared against the rows
kovn owns (`client.snapshot`), and written by one batching writer
(`writer`), so many reconcilers share few transactions.
"""
