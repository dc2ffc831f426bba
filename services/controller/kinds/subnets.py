"""The Subnet kind.

A Subnet becomes: an ipam subnet, a logical switch with a port on the
cluster router, and a status (usage per family, a Ready condition). An
invalid or overlapping Subnet gets Ready=False with the reason and a
Warning Event and touches nothing else — in particular a Subnet edited into
an invalid state keeps its switch and pods as they were. A deleted Subnet
goes from the NB only once ipam agrees it is empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Hashable, Iterable
from typing import Any

import structlog

from services.api.ipam.v1 import ipam_pb2
from services.common.errors import FailedPrecondition, InvalidArgument, KovnError, NotFound
from services.common.kube import KubeError, Obj, resource_path
from services.controller import metrics
from services.controller.conditions import API_VERSION, GROUP, VERSION, condition, now
from services.controller.events import cluster_ref
from services.controller.kind import FanIn, Kind, Watch
from services.controller.nb.rows import DesiredRow
from services.controller.subnet_spec import (
    SubnetSpec,
    internal_subnet,
    overlaps,
    parse_subnet,
)
from services.controller.topology import names
from services.controller.topology import subnet as subnet_topology
from services.controller.workqueue import Retry

log = structlog.get_logger(__name__)

#: How long allocations are collected before Subnet usage is refreshed.
USAGE_COALESCE_SECONDS = 1.0

#: Marks the Subnet objects the controller created for its built-in subnets.
BUILTIN_LABEL = "kovn.io/builtin"

SUBNETS = Watch("subnets", GROUP, VERSION, "subnets")


class Subnets(Kind):
    name = "subnet"
    watch = SUBNETS
    workers = 2
    first = True

    async def prepare(self) -> None:
        """The cluster router and the default and join subnets from config."""
        cfg = self.ctx.config
        default = internal_subnet(cfg.default_subnet, cfg.default_subnet_cidr)
        join = dataclasses.replace(internal_subnet(cfg.join_subnet, cfg.join_cidr), internal=True)
        existing = {s.name: s for s in await self.ctx.ipam.list_subnets()}
        for row in subnet_topology.cluster_rows():
            await self.ctx.sync.sync(row.owner, [row])
        for spec in (default, join):
            obj = self.ctx.informers["subnets"].get(spec.name)
            if obj is not None:
                # The object, once it exists, says what the built-in is.
                with contextlib.suppress(KovnError):
                    spec = parse_subnet(obj)
                    spec = self._as_join(spec) if spec.name == join.name else spec
            await self.ctx.ipam.ensure_subnet(spec, existing.get(spec.name))
            await self._write_rows(spec)
            self.ctx.subnets[spec.name] = spec
            if obj is None:
                await self._create_object(spec)

    async def _create_object(self, spec: SubnetSpec) -> None:
        """A built-in subnet as a Subnet object (as Kube-OVN does), so that
        `kubectl get subnets` shows it and edits to it are validated like
        any Subnet's. Its spec is the configuration's; the object wins after."""
        body = {
            "apiVersion": API_VERSION,
            "kind": "Subnet",
            "metadata": {"name": spec.name, "labels": {BUILTIN_LABEL: "true"}},
            "spec": {"cidrBlock": ",".join(spec.cidr_strings)},
        }
        try:
            await self.ctx.kube.create(resource_path(GROUP, VERSION, "subnets"), body)
            log.info("created built-in subnet object", subnet=spec.name)
        except KubeError as exc:
            if exc.status == 404:
                return  # the CRD is not installed: the built-ins live on in config
            if exc.status != 409:  # 409: it exists already
                raise

    def _rows(self, spec: SubnetSpec) -> list[DesiredRow]:
        ctx = self.ctx
        join = ctx.join.cidr_strings if ctx.config.join_subnet in ctx.subnets else []
        if spec.name == ctx.config.join_subnet:
            join = spec.cidr_strings
        return subnet_topology.subnet_rows(spec, join)

    async def _write_rows(self, spec: SubnetSpec) -> None:
        await self.ctx.sync.sync(names.subnet_owner(spec.name), self._rows(spec))

    def desired_rows(self) -> Iterable[DesiredRow]:
        yield from subnet_topology.cluster_rows()
        for spec in self.ctx.subnets.values():
            yield from self._rows(spec)

    def fan_in(self) -> dict[str, FanIn]:
        # A subnet's validity may hinge on the others (overlaps): re-check the
        # invalid ones when any usable subnet changes.
        return {"subnet": lambda key: [n for n in self.ctx.subnet_errors if n != key]}

    def _builtin(self, name: str) -> bool:
        return name in (self.ctx.config.default_subnet, self.ctx.config.join_subnet)

    async def reconcile(self, key: Hashable) -> None:
        ctx = self.ctx
        name = str(key)
        obj = ctx.informers["subnets"].get(name)
        if obj is None:
            if not self._builtin(name):
                await self._delete(name)
            elif name in ctx.subnets:
                await self._create_object(ctx.subnets[name])  # deleted: it comes back
            return
        generation = int((obj.get("metadata") or {}).get("generation") or 0)
        try:
            spec = parse_subnet(obj)
            if name == ctx.config.join_subnet:
                spec = self._as_join(spec)
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
            await self._status(obj, condition(False, reason, str(exc), generation))
            await ctx.events.warning(cluster_ref("Subnet", API_VERSION, obj), reason, str(exc))
            return
        await self._write_rows(spec)
        ctx.subnet_errors.pop(name, None)
        changed = ctx.subnets.get(name) != spec
        ctx.subnets[name] = spec
        await self._status(
            obj, condition(True, "Ready", "", generation), {"gateway": _gateway(spec)}
        )
        if changed:
            ctx.queues.changed(self.name, name)

    def _as_join(self, spec: SubnetSpec) -> SubnetSpec:
        """The join subnet is the nodes' and only theirs: no pods, no bindings."""
        for what, bad in (
            ("spec.namespaces", spec.namespaces),
            ("spec.default", spec.default),
            ("spec.private", spec.private),
            ("spec.provider", spec.provider),
        ):
            if bad:
                raise InvalidArgument("the join subnet is for nodes only", field=what)
        return dataclasses.replace(spec, internal=True)

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
        await ctx.sync.remove(names.subnet_owner(name))
        ctx.subnets.pop(name, None)
        ctx.queues.changed(self.name, name)

    async def _status(
        self, obj: Obj, condition: dict[str, Any], values: dict[str, Any] | None = None
    ) -> None:
        status = dict(obj.get("status") or {})
        old = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
        new_status: dict[str, Any] = {}
        if old is None or any(
            old.get(k) != condition[k]
            for k in ("status", "reason", "message", "observedGeneration")
        ):
            condition = {**condition, "lastTransitionTime": now()}
            new_status["conditions"] = [condition]
        for k, v in (values or {}).items():
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

    async def lead(self) -> None:
        """Subnet usage into status and metrics: shortly after addresses were
        allocated or released (a burst of pods makes one refresh, not one
        each), and every usage_period in any case."""
        ctx = self.ctx
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ctx.usage_changed.wait(), ctx.config.usage_period)
            if ctx.usage_changed.is_set():
                await asyncio.sleep(USAGE_COALESCE_SECONDS)  # rate limit, not a wait for state
            ctx.usage_changed.clear()
            try:
                await self.refresh_usage()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("subnet usage refresh failed", error=str(exc))

    async def refresh_usage(self) -> None:
        """Usage from ipam into metrics and each Subnet's status."""
        usage = await self.ctx.ipam.usage()
        per: dict[str, dict[str, Any]] = {}
        for u in usage:
            fam = "v4" if u.family == ipam_pb2.IPV4 else "v6"
            for state in ("used", "free", "excluded"):
                metrics.SUBNET_ADDRESSES.labels(subnet=u.subnet, family=fam, state=state).set(
                    getattr(u, state)
                )
            per.setdefault(u.subnet, {})[f"{fam}UsingIPs"] = int(u.used)
            per[u.subnet][f"{fam}AvailableIPs"] = int(min(u.free, 2**53))
        for name, values in per.items():
            obj = self.ctx.informers["subnets"].get(name)
            if obj is None or name in self.ctx.subnet_errors:
                continue
            generation = int((obj.get("metadata") or {}).get("generation") or 0)
            values["gateway"] = _gateway(self.ctx.subnets[name]) if name in self.ctx.subnets else ""
            await self._status(obj, condition(True, "Ready", "", generation), values)


def _gateway(spec: SubnetSpec) -> str:
    return ",".join(spec.gateway_strings)
