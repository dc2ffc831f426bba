"""kovn's IPAM service: subnets, pools, addresses and MACs, owned by a store.

addresses.py  parsing of CIDRs/IPs/ranges/MACs; address sets as intervals
model.py      the records (subnet, pool, allocation, cool-down)
allocator.py  pure logic: which address/MAC a new owner gets
store/        the truth: SQLite (one replica) or etcd (many replicas)
core.py       allocator + store: ordering, retries, metrics, logs
servicer.py   kovn.ipam.v1.Ipam over gRPC (translation only)
service.py    what the chassis runs; config.py its settings; main.py
"""
