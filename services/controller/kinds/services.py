"""The Service kind, and the EndpointSlices that fan in to it.

A Service becomes one OVN load balancer per protocol (`topology.loadbalancer`),
rewritten the moment one of its EndpointSlices changes: a slice event marks
its Service dirty (by the `kubernetes.io/service-name` label), and the
Service's worker recomputes from the caches. Nothing is polled, and a
change costs the rows of that one Service.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from services.common.kube import Obj
from services.controller.context import Context
from services.controller.kind import Kind, Watch
from services.controller.nb.rows import DesiredRow
from services.controller.topology import names
from services.controller.topology.loadbalancer import service_rows

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

    def rows(self, key: str) -> list[DesiredRow]:
        service = self.ctx.informers["services"].get(key)
        if service is None:
            return []
        cache = self.ctx.informers["endpointslices"]
        slices = [s for k in sorted(self.slices.get(key, ())) if (s := cache.get(k)) is not None]
        return service_rows(service, slices)

    async def reconcile(self, key: Hashable) -> None:
        namespace, name = str(key).split("/", 1)
        await self.ctx.sync.sync(names.service_owner(namespace, name), self.rows(str(key)))

    def desired_rows(self) -> Iterable[DesiredRow]:
        for key in list(self.ctx.informers["services"].cache):
            yield from self.rows(key)


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
        if old is not None and old != new:
            services.slices.get(old, set()).discard(key)
            self.ctx.queues.enqueue("service", old)
        if new is None:
            self._owner.pop(key, None)
            return
        self._owner[key] = new
        services.slices.setdefault(new, set()).add(key)
        self.ctx.queues.enqueue("service", new)

    async def prepare(self) -> None:
        """Take-over: index every cached slice before the resync reads them."""
        for key in list(self.ctx.informers["endpointslices"].cache):
            await self.reconcile(key)
