"""The kovn controller: Kubernetes intent into OVN Northbound, and GetPodNetwork.

How the pieces fit (each module says why it exists):

- `informer`: list+watch of pods, nodes, namespaces, Subnets and IPPools
  into caches; events only mark keys dirty in a `workqueue` (serial per
  object, parallel across objects, typed errors decide retry or Event).
- Reconcilers, one per kind: `subnets` (Subnet/IPPool -> ipam + switch +
  router port + ACLs + status), `nodes` (join port, Node annotations),
  `pods` (subnet choice, ipam allocation, logical port, pod annotations),
  `egress` (per-node address sets and reroute policies).
- `topology` turns all of that into plain `nb.rows.DesiredRow`s; `nb.client`
  snapshots the rows kovn owns and applies batches; `nb.writer` is the one
  writer batching every reconciler's rows into few transactions; `resync`
  diffs desired against owned rows (a restart with nothing changed writes
  nothing) and collects garbage in ipam.
- `board` holds each NIC's answer and wakes `servicer` calls waiting for it;
  `leader` elects one replica through a Lease; followers forward calls.
- `service` wires it all into the chassis; `main` is the entry point.
"""
