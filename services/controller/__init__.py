"""The kovn controller: Kubernetes intent into OVN Northbound, and GetPodNetwork.

How the pieces fit (each module says why it exists):

- `kinds/`: one module per kind of intent (`subnets`, `ippools`,
  `namespaces`, `nodes`, `pods`, `egress`), each a `kind.Kind` declaring
  its informer, reconciler, desired rows and fan-in. `registry` wires
  informers (`informer`), work queues (`workqueue`: serial per object,
  parallel across objects, typed errors decide retry or Event), listeners,
  take-over and resync from those declarations.
- `nic_intent` decides what each pod NIC asks for and gets (subnet,
  addresses, MAC, QoS, routes); `kinds.pods` allocates and writes it.
- `topology/`: pure functions from intent to `nb.rows.DesiredRow`s, one
  module per concern, names and owners in `topology.names` only.
- `nb/`: `tables` (what kovn manages per NB table), `rows` (desired and
  owned rows, digests, diff), `client` (snapshot and apply on the NB),
  `writer` (batches every write into few transactions) and `sync` (the one
  owner-keyed sync and the leader's full resync: a restart with nothing
  changed writes nothing).
- `allocations` loads ipam's allocations at take-over and collects garbage.
- `board` holds each NIC's answer and wakes `servicer` calls waiting for it;
  `leader` elects one replica through a Lease; followers forward calls.
- `service` wires it all into the chassis; `main` is the entry point.
"""
