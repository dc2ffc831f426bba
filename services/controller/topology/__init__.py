"""The NB rows kovn wants, as pure functions: one module per concern.

Nothing here does I/O: the same inputs always give the same rows (and
hashes), which is what lets a restart recompute the whole topology and find
that nothing needs writing. Every row name and every owner string is built
in `names`, and only there, so that a reconciler and a resync can never
spell the same row two ways.

- `names`   row names, owner strings, stable MACs
- `subnet`  the cluster router, a subnet's switch and router port, private ACLs
- `ports`   pod NIC and node join ports
- `egress`  distributed egress: per-node address sets and reroute policies

Where the next concerns go (one module each): `policy` (NetworkPolicy port
groups, address sets, ACLs), `loadbalancer` (Service load balancers and the
shared load-balancer group), `qos` and `mirror` (per-NIC intent pushed to
nodes), `provider` (underlay provider networks, localnet ports and VLANs),
`gateway` (centralized egress gateways).
"""
