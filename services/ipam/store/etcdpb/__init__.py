"""etcd v3 API messages (a subset), generated from etcd_subset.proto.

protogen only builds kovn's own contracts under protos/; this is a client of
someone else's API, so it lives beside the store that uses it and is built
by `python -m services.ipam.store.etcdpb`.
"""
