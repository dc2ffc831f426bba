"""Full reconcile of the NB against everything kovn knows, and garbage collection.

At leadership start (and periodically) the controller recomputes every row
it wants from its caches and ipam's allocations, compares them with the
rows kovn owns in the NB by content hash, and writes only the difference,
in one batched transaction. With nothing changed that writes nothing.

Garbage collection releases allocations whose pod or node no longer exists.
Only allocations made before the live set was taken are candidates, so a pod
allocated meanwhile is never freed, and an allocation whose pod object still
exists — terminating or not — is always live.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog

from services.controller import topology
from services.controller.context import Context, nic_key
from services.controller.egress import egress_rows
from services.controller.nb.rows import DesiredRow, RowKey, diff
from services.controller.nodes import NODE_NAMESPACE

log = structlog.get_logger(__name__)


@dataclass
class ResyncResult:
    desired: int
    ensured: int
    removed: int
    written: int
    seconds: float


async def load_allocations(ctx: Context) -> None:
    """Replace the allocation caches with what ipam holds."""
    pods = {}
    nodes = {}
    nics: dict[str, set[str]] = {}
    join = ctx.config.join_subnet
    async for alloc in ctx.ipam.allocations():
        o = alloc.owner
        if o.network == join and o.namespace == NODE_NAMESPACE:
            nodes[o.pod] = alloc
        else:
            pods[nic_key(o.namespace, o.pod, o.nic)] = alloc
            nics.setdefault(f"{o.namespace}/{o.pod}", set()).add(o.nic or "eth0")
    ctx.allocations = pods
    ctx.pod_nics = nics
    ctx.node_allocations = nodes


def desired_rows(ctx: Context) -> list[DesiredRow]:
    rows = [topology.router_row()]
    join_cidrs = ctx.join.cidr_strings if ctx.config.join_subnet in ctx.subnets else []
    for spec in ctx.subnets.values():
        rows.extend(topology.subnet_rows(spec, join_cidrs))
    join = ctx.config.join_subnet
    for node, alloc in ctx.node_allocations.items():
        if ctx.informers.nodes.get(node) is None:
            continue
        addr = topology.NicAddress(alloc.mac, tuple(a.address for a in alloc.addresses))
        rows.append(topology.node_port_row(node, join, addr))
    ctx.node_pods.clear()
    ctx.pod_node.clear()
    for key, alloc in ctx.allocations.items():
        o = alloc.owner
        pod = ctx.informers.pods.get(f"{o.namespace}/{o.pod}")
        if pod is None or o.network not in ctx.subnets:
            continue
        spec = pod["spec"]
        if spec.get("hostNetwork") or not spec.get("nodeName"):
            continue
        addr = topology.NicAddress(alloc.mac, tuple(a.address for a in alloc.addresses))
        rows.append(
            topology.pod_port_row(o.namespace, o.pod, o.nic, o.network, addr, spec["nodeName"])
        )
        if o.nic in ("", "eth0") and ctx.subnets[o.network].gateway_type == "distributed":
            ips = tuple(a.ip for a in alloc.addresses)
            ctx.node_pods.setdefault(spec["nodeName"], {})[key] = ips
            ctx.pod_node[key] = spec["nodeName"]
    for node in ctx.node_allocations:
        rows.extend(egress_rows(ctx, node))
    return rows


async def resync(ctx: Context) -> ResyncResult:
    """Make kovn's NB rows exactly what the caches say; write only the difference."""
    started = time.perf_counter()
    # Snapshot first, then compute what is wanted without yielding, then
    # queue the write: a pod forgotten meanwhile is either already absent
    # from `desired` or its removal is queued after ours, never resurrected.
    actual = await ctx.nb.snapshot()
    desired = desired_rows(ctx)
    plan = diff(desired, actual)
    written = 0
    if plan.ensure or plan.remove:
        written = await ctx.writer.write(plan.ensure, plan.remove, force=True)
    known: dict[RowKey, str] = {(r.table, r.name): r.digest for r in desired}
    ctx.nb_known = known
    result = ResyncResult(
        desired=len(desired),
        ensured=len(plan.ensure),
        removed=len(plan.remove),
        written=written,
        seconds=time.perf_counter() - started,
    )
    log.info(
        "nb resync",
        desired=result.desired,
        ensured=result.ensured,
        removed=result.removed,
        written=result.written,
        seconds=round(result.seconds, 3),
    )
    return result


async def collect_garbage(ctx: Context) -> int:
    """Release allocations whose owner object is gone; returns how many."""
    cutoff_ms = int(time.time() * 1000)
    live = []
    dead = 0
    join = ctx.config.join_subnet
    async for alloc in ctx.ipam.allocations():
        if alloc.created_unix_ms >= cutoff_ms:
            live.append(alloc.owner)
            continue
        o = alloc.owner
        if o.network == join and o.namespace == NODE_NAMESPACE:
            alive = ctx.informers.nodes.get(o.pod) is not None
        else:
            alive = ctx.informers.pods.get(f"{o.namespace}/{o.pod}") is not None
        if alive:
            live.append(o)
        else:
            dead += 1
    if not dead:
        return 0
    released = await ctx.ipam.reconcile(live, cutoff_ms)
    for alloc in released:
        o = alloc.owner
        if o.network == join and o.namespace == NODE_NAMESPACE:
            ctx.node_allocations.pop(o.pod, None)
        else:
            ctx.allocations.pop(nic_key(o.namespace, o.pod, o.nic), None)
    log.info("garbage collected allocations", released=len(released))
    return len(released)
