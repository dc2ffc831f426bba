"""Node reconciler: each node gets a join port for its `kovn0`.

The join address comes from ipam (owner: join subnet, namespace "kovn.nodes", pod =
node name, nic "kovn0"), the port lives on the join switch bound to the
node, and the result is written to the Node's annotations and posted for
GetNodeNetwork.
"""

from __future__ import annotations

from collections.abc import Hashable

from services.common.kube import KubeError, resource_path
from services.controller import annotations as ann
from services.controller import metrics, topology
from services.controller.context import Context, NicNetwork
from services.controller.ipam_client import owner
from services.controller.nb.rows import OwnedRow

JOIN_NIC = "kovn0"
# Node allocations live in a namespace no Kubernetes namespace can have
# (namespaces cannot contain dots), so they never meet a pod's.
NODE_NAMESPACE = "kovn.nodes"


def node_owner(join: str, node: str) -> tuple[str, str, str, str]:
    return (join, NODE_NAMESPACE, node, JOIN_NIC)


class NodeReconciler:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def reconcile(self, key: Hashable) -> None:
        ctx = self.ctx
        name = str(key)
        node = ctx.informers.nodes.get(name)
        join = ctx.join
        if node is None:
            await self.forget(name)
            return
        alloc = ctx.node_allocations.get(name)
        if alloc is None:
            alloc = await ctx.ipam.allocate(owner(*node_owner(join.name, name)))
            ctx.node_allocations[name] = alloc
        addresses = tuple(a.address for a in alloc.addresses)
        gateways = tuple(a.gateway for a in alloc.addresses)
        row = topology.node_port_row(name, join.name, topology.NicAddress(alloc.mac, addresses))
        if ctx.nb_known.get((row.table, row.name)) != row.digest:
            await ctx.writer.write([row])
            ctx.nb_known[(row.table, row.name)] = row.digest
        annotations = (node.get("metadata") or {}).get("annotations") or {}
        want = {
            ann.key(ann.JOIN_IP): ",".join(a.ip for a in alloc.addresses),
            ann.key(ann.JOIN_MAC): alloc.mac,
            ann.key(ann.JOIN_CIDR): ",".join(a.cidr for a in alloc.addresses),
            ann.key(ann.JOIN_GATEWAY): ",".join(gateways),
            ann.key(ann.JOIN_PORT): row.name,
        }
        patch = {k: v for k, v in want.items() if annotations.get(k) != v}
        if patch:
            try:
                await ctx.kube.merge_patch(
                    resource_path("", "v1", "nodes", name=name),
                    {"metadata": {"annotations": patch}},
                )
                metrics.KUBE_WRITES.labels(kind="node").inc()
            except KubeError as exc:
                if exc.status == 404:
                    return
                raise
        ctx.egress_dirty(name)
        ctx.node_board.ready(
            name,
            NicNetwork(
                namespace="",
                name=name,
                uid="",
                nic=JOIN_NIC,
                logical_port=row.name,
                logical_switch=join.name,
                mac=alloc.mac,
                mtu=join.mtu or ctx.config.mtu,
                addresses=addresses,
                gateways=gateways,
                node=name,
            ),
        )

    async def forget(self, name: str) -> None:
        ctx = self.ctx
        port = topology.node_port_name(name)
        ctx.nb_known.pop(("Logical_Switch_Port", port), None)
        await ctx.writer.write(
            remove=[OwnedRow("Logical_Switch_Port", port, f"node/{name}", "", "")]
        )
        ctx.node_allocations.pop(name, None)
        await ctx.ipam.release(owner(*node_owner(ctx.join.name, name)))
        ctx.node_board.clear(name)
        ctx.egress_dirty(name)
