"""The IPPool kind: named sets of addresses inside a subnet, in ipam.

A pool is created in ipam once its subnet is usable and recreated when its
addresses or subnet change; a deleted pool goes once ipam agrees nothing is
allocated from it. Pods that failed for want of a pool are retried when one
changes (their fan-in).
"""

from __future__ import annotations

from collections.abc import Hashable

from services.common.errors import FailedPrecondition, KovnError
from services.common.kube import KubeError, Obj, resource_path
from services.controller.conditions import API_VERSION, GROUP, VERSION, condition, now
from services.controller.events import cluster_ref
from services.controller.kind import Kind, Watch
from services.controller.subnet_spec import parse_pool
from services.controller.workqueue import Retry


class IPPools(Kind):
    name = "ippool"
    watch = Watch("ippools", GROUP, VERSION, "ippools")
    workers = 2
    first = True

    async def reconcile(self, key: Hashable) -> None:
        ctx = self.ctx
        name = str(key)
        obj = ctx.informers["ippools"].get(name)
        existing = {p.name: p for p in await ctx.ipam.list_pools()}
        if obj is None:
            old = existing.get(name)
            if old is not None:
                try:
                    await ctx.ipam.delete_pool(old.subnet, name)
                except FailedPrecondition as exc:
                    raise Retry(f"pool {name} still in use: {exc}", delay=5.0) from None
            ctx.pool_errors.pop(name, None)
            if ctx.pools.pop(name, None) is not None:
                ctx.queues.changed(self.name, name)
            return
        try:
            spec = parse_pool(obj)
            if spec.subnet not in ctx.subnets:
                raise Retry(f"subnet {spec.subnet} of pool {name} is not ready", delay=1.0)
            have = existing.get(name)
            if have is not None and (
                have.subnet != spec.subnet or sorted(have.addresses) != sorted(spec.addresses)
            ):
                await ctx.ipam.delete_pool(have.subnet, name)
                have = None
            if have is None:
                await ctx.ipam.create_pool(spec)
        except KovnError as exc:
            if exc.retryable:
                raise
            ctx.pools.pop(name, None)
            ctx.pool_errors[name] = str(exc)
            await ctx.events.warning(
                cluster_ref("IPPool", API_VERSION, obj), "InvalidSpec", str(exc)
            )
            await self._status(obj, False, "InvalidSpec", str(exc))
            return
        changed = ctx.pools.get(name) != spec
        ctx.pools[name] = spec
        ctx.pool_errors.pop(name, None)
        await self._status(obj, True, "Ready", "")
        if changed:
            ctx.queues.changed(self.name, name)

    async def _status(self, obj: Obj, ok: bool, reason: str, message: str) -> None:
        old = next(
            (
                c
                for c in (obj.get("status") or {}).get("conditions") or []
                if c.get("type") == "Ready"
            ),
            None,
        )
        cond = condition(ok, reason, message, 0)
        cond.pop("observedGeneration")
        if old is not None and all(old.get(k) == cond[k] for k in ("status", "reason", "message")):
            return
        cond["lastTransitionTime"] = now()
        try:
            await self.ctx.kube.merge_patch(
                resource_path(
                    GROUP, VERSION, "ippools", name=str(obj["metadata"]["name"]), sub="status"
                ),
                {"status": {"conditions": [cond]}},
            )
        except KubeError as exc:
            if exc.status != 404:
                raise
