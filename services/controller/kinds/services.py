"""The Service kind, and the EndpointSlices that fan in to it.

A Service becomes one OVN load balancer per protocol (`topology.loadbalancer`),
rewritten the moment one of its EndpointSlices changes: a slice event marks
its Service dirty (by the `kubernetes.io/service-name` label), and the
Service's worker recomputes from the caches. Nothing is polled, and a
change costs the rows of that one Service.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Hashable, Iterable

from services.common.kube import Obj
from services.controller import metrics
from services.controller.context import Context
from services.controller.events import object_ref
from services.controller.kind import Kind, Watch
from services.controller.nb.rows import DesiredRow
from services.controller.topology import names
from services.controller.topology.loadbalancer import ServiceLbs, service_lbs

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def _service_key(slice_obj: Obj) -> str | None:
    meta = slice_obj.get("metadata") or {}
    service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return f"{meta.get('namespace')}/{service}" if service else None


class Services(Kind):
    name = "service"
    watch = Watch("services", "", "v1", "services")
    workers = 8

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        #: The slices of each Service, by slice key (kept by EndpointSlices).
        self.slices: dict[str, set[str]] = {}
        #: When a Service's slices last changed and its LBs were not yet written.
        self.changed_at: dict[str, float] = {}
        self.programmed: set[str] = set()

    def lbs(self, key: str) -> ServiceLbs:
        service = self.ctx.informers["services"].get(key)
        if service is None:
            return ServiceLbs([])
        cache = self.ctx.informers["endpointslices"]
        slices = [s for k in sorted(self.slices.get(key, ())) if (s := cache.get(k)) is not None]
        return service_lbs(service, slices)

    async def reconcile(self, key: Hashable) -> None:
        key = str(key)
        namespace, name = key.split("/", 1)
        lbs = self.lbs(key)
        await self.ctx.sync.sync(names.service_owner(namespace, name), lbs.rows)
        changed_at = self.changed_at.pop(key, None)
        if changed_at is not None:
            metrics.SLICE_TO_NB_SECONDS.observe(time.monotonic() - changed_at)
        if lbs.rows:
            self.programmed.add(key)
            metrics.LB_BACKENDS.labels(namespace, name).set(lbs.backends)
        else:
            self.programmed.discard(key)
            with contextlib.suppress(KeyError):
                metrics.LB_BACKENDS.remove(namespace, name)
        metrics.SERVICES.set(len(self.programmed))
        service = self.ctx.informers["services"].get(key)
        if lbs.problems and service is not None:
            await self.ctx.events.warning(
                object_ref("Service", "v1", service),
                "ServiceNotFullyProgrammed",
                "kovn cannot program " + "; ".join(lbs.problems) + " (TCP, UDP and SCTP are)",
            )

    def desired_rows(self) -> Iterable[DesiredRow]:
        for key in list(self.ctx.informers["services"].cache):
            yield from self.lbs(key).rows


class EndpointSlices(Kind):
    """Keeps each Service's slice index and marks the Service dirty."""

    name = "endpointslice"
    watch = Watch("endpointslices", "discovery.k8s.io", "v1", "endpointslices")
    workers = 4

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        #: The Service each slice belongs to (a deleted slice is gone from the cache).
        self._owner: dict[str, str] = {}

    def _services(self) -> Services:
        kind = self.ctx.kinds["service"]
        assert isinstance(kind, Services)
        return kind

    async def reconcile(self, key: Hashable) -> None:
        key = str(key)
        services = self._services()
        obj = self.ctx.informers["endpointslices"].get(key)
        new = _service_key(obj) if obj is not None else None
        old = self._owner.get(key)
        now = time.monotonic()
        if old is not None and old != new:
            services.slices.get(old, set()).discard(key)
            services.changed_at.setdefault(old, now)
            self.ctx.queues.enqueue("service", old)
        if new is None:
            self._owner.pop(key, None)
            return
        self._owner[key] = new
        services.slices.setdefault(new, set()).add(key)
        services.changed_at.setdefault(new, now)
        self.ctx.queues.enqueue("service", new)

    async def prepare(self) -> None:
        """Take-over: index every cached slice before the resync reads them."""
        for key in list(self.ctx.informers["endpointslices"].cache):
            await self.reconcile(key)
        # Not changes: the take-over's own catch-up is not a latency to report.
        self._services().changed_at.clear()
