"""Real processes for the tests and the benchmarks, in one place both import.

The integration tests and `bench/` start the same things: an etcd server and
ipam replicas, one OVN/OVS node with the dataplane service behind the real
kovn-cni executable, a controller stand-in. Kept here rather than under
tests/ so that a benchmark does not depend on the test suite's layout; like
the rest of sandbox/ this is development tooling, never used by a service.

- `procs`: waiting for a process's start-up, stopping it, a free port.
- `ipam`: `EtcdServer` and `IpamProcess`.
- `dataplane`: `node_env()`, a real node with the dataplane service.
- `fake_controller`: the controller's GetPodNetwork/GetNodeNetwork stand-in.
"""
