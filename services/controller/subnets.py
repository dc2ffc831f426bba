"""Subnet and IPPool reconcilers.

A Subnet becomes: an ipam subnet, a logical switch with a port on the
cluster router, and a status (usage per family, a Ready condition). An
invalid or overlapping Subnet gets Ready=False with the reason and a
Warning Event and touches nothing else — in particular a Subnet edited into
an invalid state keeps its switch and pods as they were. A deleted Subnet
goes from the NB only once ipam agrees it is empty.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
from collections.abc import Callable, Hashable
from typing import Any

import structlog

from services.api.ipam.v1 import ipam_pb2
from services.common.errors import FailedPrecondition, InvalidArgument, KovnError, NotFound
from services.common.kube import KubeError, Obj, resource_path
from services.controller import metrics, topology
from services.controller.context import Context
from services.controller.events import cluster_ref
from services.controller.nb.rows import OwnedRow
from services.controller.subnet_spec import (
    SubnetSpec,
    internal_subnet,
    overlaps,
    parse_pool,
    parse_subnet,
)
from services.controller.workqueue import Retry

log = structlog.get_logger(__name__)

GROUP, VERSION = "kovn.io", "v1"
API_VERSION = f"{GROUP}/{VERSION}"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(status: bool, reason: str, message: str, generation: int) -> dict[str, Any]:
    return {
        "type": "Ready",
        "status": "True" if status else "False",
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
    }


class SubnetReconciler:
    def __init__(self, ctx: Context, on_change: Callable[[], None]) -> None:
        self.ctx = ctx
        #: Called when the set of usable subnets or pools changed.
        self.on_change = on_change
        self._usage: dict[str, dict[str, int]] = {}

    async def ensure_builtin(self) -> None:
        """The cluster router and the default and join subnets from config."""
        cfg = self.ctx.config
        default = internal_subnet(cfg.default_subnet, cfg.default_subnet_cidr)
        join = dataclasses.replace(internal_subnet(cfg.join_subnet, cfg.join_cidr), internal=True)
        existing = {s.name: s for s in await self.ctx.ipam.list_subnets()}
        await self.ctx.writer.write([topology.router_row()])
        for spec in (default, join):
            await self.ctx.ipam.ensure_subnet(spec, existing.get(spec.name))
            await self._write_rows(spec)
            self.ctx.subnets[spec.name] = spec

    async def _write_rows(self, spec: SubnetSpec) -> None:
        ctx = self.ctx
        join = ctx.join.cidr_strings if ctx.config.join_subnet in ctx.subnets else []
        if spec.name == ctx.config.join_subnet:
            join = spec.cidr_strings
        rows = topology.subnet_rows(spec, join)
        todo = [r for r in rows if ctx.nb_known.get((r.table, r.name)) != r.digest]
        # ACLs of a subnet that stopped being private (or changed family).
        wanted = {(r.table, r.name) for r in rows}
        stale = [
            OwnedRow(table, name, f"subnet/{spec.name}", "", spec.name)
            for table, name in list(ctx.nb_known)
            if table == "ACL" and name.startswith(f"{spec.name}/") and (table, name) not in wanted
        ]
        if todo or stale:
            await ctx.writer.write(todo, stale)
            for r in todo:
                ctx.nb_known[(r.table, r.name)] = r.digest
            for o in stale:
                ctx.nb_known.pop((o.table, o.name), None)

    def _builtin(self, name: str) -> bool:
        return name in (self.ctx.config.default_subnet, self.ctx.config.join_subnet)

    async def reconcile(self, key: Hashable) -> None:
        ctx = self.ctx
        name = str(key)
        obj = ctx.informers.subnets.get(name)
        if obj is None:
            if not self._builtin(name):
                await self._delete(name)
            return
        generation = int((obj.get("metadata") or {}).get("generation") or 0)
        try:
            spec = parse_subnet(obj)
            if self._builtin(name) and name == ctx.config.join_subnet:
                raise InvalidArgument(f"{name!r} is the join subnet's name", field="metadata.name")
            clash = overlaps(spec, [s for s in ctx.subnets.values() if s.name != name])
            if clash:
                raise FailedPrecondition(
                    f"{spec.cidr_strings} overlaps subnet {clash}", field="spec.cidrBlock"
                )
            existing = None
            with contextlib.suppress(NotFound):
                existing = await ctx.ipam.get_subnet(name)
            await ctx.ipam.ensure_subnet(spec, existing)
        except KovnError as exc:
            if exc.retryable:
                raise
            reason = "InvalidSpec" if isinstance(exc, InvalidArgument) else "Conflict"
            ctx.subnet_errors[name] = str(exc)
            await self._status(obj, _condition(False, reason, str(exc), generation))
            await ctx.events.warning(cluster_ref("Subnet", API_VERSION, obj), reason, str(exc))
            return
        await self._write_rows(spec)
        ctx.subnet_errors.pop(name, None)
        changed = ctx.subnets.get(name) != spec
        ctx.subnets[name] = spec
        await self._status(obj, _condition(True, "Ready", "", generation))
        if changed:
            self.on_change()

    async def _delete(self, name: str) -> None:
        ctx = self.ctx
        ctx.subnet_errors.pop(name, None)
        if name not in ctx.subnets:
            return
        try:
            await ctx.ipam.delete_subnet(name)
        except NotFound:
            pass
        except FailedPrecondition as exc:
            raise Retry(f"subnet {name} still has allocations: {exc}", delay=1.0) from None
        owner = f"subnet/{name}"
        acls = [
            OwnedRow("ACL", acl, owner, "", name)
            for table, acl in list(ctx.nb_known)
            if table == "ACL" and acl.startswith(f"{name}/")
        ]
        rows = [
            *acls,
            OwnedRow(
                "Logical_Switch_Port", topology.switch_router_port_name(name), owner, "", name
            ),
            OwnedRow(
                "Logical_Router_Port",
                topology.router_port_name(name),
                owner,
                "",
                topology.CLUSTER_ROUTER,
            ),
            OwnedRow("Logical_Switch", name, owner, "", ""),
        ]
        await ctx.writer.write(remove=rows)
        for r in rows:
            ctx.nb_known.pop((r.table, r.name), None)
        ctx.subnets.pop(name, None)
        self.on_change()

    async def _status(
        self, obj: Obj, condition: dict[str, Any], usage: dict[str, int] | None = None
    ) -> None:
        status = dict(obj.get("status") or {})
        old = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
        new_status: dict[str, Any] = {}
        if old is None or any(
            old.get(k) != condition[k]
            for k in ("status", "reason", "message", "observedGeneration")
        ):
            condition = {**condition, "lastTransitionTime": _now()}
            new_status["conditions"] = [condition]
        for k, v in (usage or {}).items():
            if status.get(k) != v:
                new_status[k] = v
        if not new_status:
            return
        name = (obj.get("metadata") or {}).get("name")
        try:
            await self.ctx.kube.merge_patch(
                resource_path(GROUP, VERSION, "subnets", name=str(name), sub="status"),
                {"status": new_status},
            )
            metrics.KUBE_WRITES.labels(kind="subnet").inc()
        except KubeError as exc:
            if exc.status != 404:
                raise

    async def refresh_usage(self) -> None:
        """Usage from ipam into metrics and each Subnet's status."""
        usage = await self.ctx.ipam.usage()
        per: dict[str, dict[str, int]] = {}
        for u in usage:
            fam = "v4" if u.family == ipam_pb2.IPV4 else "v6"
            for state in ("used", "free", "excluded"):
                metrics.SUBNET_ADDRESSES.labels(subnet=u.subnet, family=fam, state=state).set(
                    getattr(u, state)
                )
            per.setdefault(u.subnet, {})[f"{fam}UsingIPs"] = int(u.used)
            per[u.subnet][f"{fam}AvailableIPs"] = int(min(u.free, 2**53))
        for name, values in per.items():
            obj = self.ctx.informers.subnets.get(name)
            if obj is None or name in self.ctx.subnet_errors:
                continue
            generation = int((obj.get("metadata") or {}).get("generation") or 0)
            await self._status(obj, _condition(True, "Ready", "", generation), values)


class PoolReconciler:
    def __init__(self, ctx: Context, on_change: Callable[[], None]) -> None:
        self.ctx = ctx
        self.on_change = on_change

    async def reconcile(self, key: Hashable) -> None:
        ctx = self.ctx
        name = str(key)
        obj = ctx.informers.ippools.get(name)
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
                self.on_change()
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
            self.on_change()

    async def _status(self, obj: Obj, ok: bool, reason: str, message: str) -> None:
        old = next(
            (
                c
                for c in (obj.get("status") or {}).get("conditions") or []
                if c.get("type") == "Ready"
            ),
            None,
        )
        cond = _condition(ok, reason, message, 0)
        cond.pop("observedGeneration")
        if old is not None and all(old.get(k) == cond[k] for k in ("status", "reason", "message")):
            return
        cond["lastTransitionTime"] = _now()
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
