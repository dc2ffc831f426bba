"""The controller's copy of ipam's allocations, and their garbage collection.

At leadership start the allocation caches are replaced by what ipam holds
(ipam is the owner of that truth, never the pod annotations); the NB resync
then derives every port from them.

Garbage collection releases allocations whose pod or node no longer exists.
Only allocations made before the live set was taken are candidates, so a pod
allocated meanwhile is never freed, and an allocation whose pod object still
exists — terminating or not — is always live.
"""

from __future__ import annotations

import time

import structlog

from services.controller.context import Context, nic_key
from services.controller.kinds.nodes import NODE_NAMESPACE

log = structlog.get_logger(__name__)


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
            alive = ctx.informers["nodes"].get(o.pod) is not None
        else:
            alive = ctx.informers["pods"].get(f"{o.namespace}/{o.pod}") is not None
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
