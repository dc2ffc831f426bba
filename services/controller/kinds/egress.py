"""The node egress kind: each node's pods leave the cluster through it.

Distributed egress as in the lab notes: a router policy sends traffic from
a node's pods to destinations outside the cluster's subnets to the node's
join address, where the node routes it on (masquerading for natOutgoing
subnets). It is keyed by node, so a burst of pods landing on one node costs
one address-set write, not one per pod. It watches nothing itself: pods
enqueue their node when their egress address changes, and node and subnet
changes fan in.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from services.controller.kind import FanIn, Kind
from services.controller.nb.rows import DesiredRow
from services.controller.topology import names
from services.controller.topology.egress import node_egress_rows


class Egress(Kind):
    name = "egress"
    workers = 4

    def rows(self, node: str) -> list[DesiredRow]:
        ctx = self.ctx
        alloc = ctx.node_allocations.get(node)
        if alloc is None or ctx.informers["nodes"].get(node) is None:
            return []
        pod_ips = [ip for ips in ctx.node_pods.get(node, {}).values() for ip in ips]
        return node_egress_rows(
            node, [a.ip for a in alloc.addresses], pod_ips, ctx.internal_cidrs()
        )

    async def reconcile(self, key: Hashable) -> None:
        node = str(key)
        await self.ctx.sync.sync(names.egress_owner(node), self.rows(node))

    def all_keys(self) -> Iterable[Hashable]:
        return list(self.ctx.node_allocations)

    def desired_rows(self) -> Iterable[DesiredRow]:
        # After the pods' rows: their resync rebuilt the per-node egress index.
        for node in self.ctx.node_allocations:
            yield from self.rows(node)

    def fan_in(self) -> dict[str, FanIn]:
        every_node: FanIn = lambda key: list(self.ctx.node_allocations)  # noqa: E731
        return {
            "node": lambda key: [key],
            # The cluster's CIDRs are in every node's match.
            "subnet": every_node,
        }
