"""The Node kind: each node gets a join port for its `kovn0`.

The join address comes from ipam (owner: join subnet, namespace "kovn.nodes", pod =
node name, nic "kovn0"), the port lives on the join switch bound to the
node, and the result is written to the Node's annotations and posted for
GetNodeNetwork.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from services.api.ipam.v1 import ipam_pb2
from services.common.kube import KubeError, resource_path
from services.controller import annotations as ann
from services.controller import metrics
from services.controller.context import NicNetwork
from services.controller.informer import trim_node
from services.controller.ipam_client import owner
from services.controller.kind import Kind, Watch
from services.controller.nb.rows import DesiredRow
from services.controller.topology import names
from services.controller.topology.ports import NicAddress, node_port_row

JOIN_NIC = "kovn0"
# Node allocations live in a namespace no Kubernetes namespace can have
# (namespaces cannot contain dots), so they never meet a pod's.
NODE_NAMESPACE = "kovn.nodes"


def join_owner(join: str, node: str) -> tuple[str, str, str, str]:
    return (join, NODE_NAMESPACE, node, JOIN_NIC)


NODES = Watch("nodes", "", "v1", "nodes", transform=trim_node)


class Nodes(Kind):
    name = "node"
    watch = NODES
    workers = 8

    def desired_rows(self) -> Iterable[DesiredRow]:
        ctx = self.ctx
        for node, alloc in ctx.node_allocations.items():
            if ctx.informers["nodes"].get(node) is not None:
                yield node_port_row(node, ctx.join.name, _address(alloc))

    async def reconcile(self, key: Hashable) -> None:
        ctx = self.ctx
        name = str(key)
        node = ctx.informers["nodes"].get(name)
        join = ctx.join
        if node is None:
            await self.forget(name)
            return
        alloc = ctx.node_allocations.get(name)
        if alloc is None:
            alloc = await ctx.ipam.allocate(owner(*join_owner(join.name, name)))
            ctx.node_allocations[name] = alloc
        addresses = tuple(a.address for a in alloc.addresses)
        gateways = tuple(a.gateway for a in alloc.addresses)
        row = node_port_row(name, join.name, _address(alloc))
        await ctx.sync.sync(names.node_owner(name), [row])
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
        ctx.queues.changed(self.name, name)
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
        await ctx.sync.remove(names.node_owner(name))
        ctx.node_allocations.pop(name, None)
        await ctx.ipam.release(owner(*join_owner(ctx.join.name, name)))
        ctx.node_board.clear(name)
        ctx.queues.changed(self.name, name)


def _address(alloc: ipam_pb2.Allocation) -> NicAddress:
    return NicAddress(alloc.mac, tuple(a.address for a in alloc.addresses))
