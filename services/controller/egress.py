"""Node egress reconciler: each node's pods leave the cluster through it.

Distributed egress as in the lab notes: a router policy sends traffic from
a node's pods to destinations outside the cluster's subnets to the node's
join address, where the node routes it on (masquerading for natOutgoing
subnets). The reconciler is keyed by node, so a burst of pods landing on
one node costs one address-set write, not one per pod.
"""

from __future__ import annotations

from collections.abc import Hashable

from services.controller import topology
from services.controller.context import Context
from services.controller.nb.rows import DesiredRow, OwnedRow, RowKey


def _keys(node: str) -> list[RowKey]:
    return [
        key
        for family in (4, 6)
        for key in (
            ("Address_Set", topology.address_set_name(node, family)),
            ("Logical_Router_Policy", f"egress/{node}/ip{family}"),
        )
    ]


def egress_rows(ctx: Context, node: str) -> list[DesiredRow]:
    alloc = ctx.node_allocations.get(node)
    if alloc is None or ctx.informers.nodes.get(node) is None:
        return []
    pod_ips = [ip for ips in ctx.node_pods.get(node, {}).values() for ip in ips]
    return topology.node_egress_rows(
        node, [a.ip for a in alloc.addresses], pod_ips, ctx.internal_cidrs()
    )


class EgressReconciler:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def reconcile(self, key: Hashable) -> None:
        ctx = self.ctx
        node = str(key)
        rows = egress_rows(ctx, node)
        wanted = {(r.table, r.name) for r in rows}
        todo = [r for r in rows if ctx.nb_known.get((r.table, r.name)) != r.digest]
        stale = [
            OwnedRow(
                table,
                name,
                f"egress/{node}",
                "",
                topology.CLUSTER_ROUTER if table == "Logical_Router_Policy" else "",
            )
            for table, name in _keys(node)
            if (table, name) in ctx.nb_known and (table, name) not in wanted
        ]
        if not todo and not stale:
            return
        await ctx.writer.write(todo, stale)
        for r in todo:
            ctx.nb_known[(r.table, r.name)] = r.digest
        for o in stale:
            ctx.nb_known.pop((o.table, o.name), None)
