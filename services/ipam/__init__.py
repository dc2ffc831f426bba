"""kovn's IPAM service: subnets, pools, addresses and MACs, owned by a store.

addresses.py     parsing of CIDRs/IPs/ranges/MACs; address sets as intervals
model.py         the records (subnet, pool, allocation, cool-down)
spaces.py        one CIDR's address spaces: free addresses found fast
subnets.py       the rules a subnet or pool definition must follow
request.py       what an Allocate asks for, checked against a subnet
allocator.py     pure logic: which address/MAC a new owner gets
store/           the truth: SQLite (one replica) or etcd (many replicas)
ordering.py      per-owner serialisation; subnet changes alone
view.py          the replica's memory of the store, kept in step with it
subnet_admin.py  subnet and pool changes (run alone, retried on conflicts)
allocations.py   allocate/release/reconcile: the store decides, memory follows
core.py          IpamCore: the two halves above on one view
metrics.py       the service's Prometheus metrics
servicer.py      kovn.ipam.v1.Ipam over gRPC (translation only)
service.py       what the chassis runs; config.py its settings; main.py
"""
