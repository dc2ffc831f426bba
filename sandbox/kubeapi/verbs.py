"""The API's verbs for one server, in one object.

The verbs are split by what they do (`listing`, `writes`, `deletion`) over
the layer that stores objects with their side effects (`objects`); `Api`
builds them over one store and registry, so the HTTP layer and the
controllers each take a single handle.
"""

from __future__ import annotations

from .allocation import KindContext, ServiceAllocator
from .background import Background
from .deletion import Deletes
from .listing import Pager
from .objects import Objects
from .registry import Registry
from .resources import SERVICE_GR, Obj
from .scale import Scales
from .store import Store
from .writes import Writes


class Api:
    def __init__(
        self,
        store: Store,
        registry: Registry,
        allocator: ServiceAllocator,
        background: Background,
    ) -> None:
        self.store = store
        self.registry = registry
        self.objects = Objects(store, registry, background)
        self.lists = Pager(store)
        self.writes = Writes(self.objects, KindContext(allocator, self._services))
        self.deletes = Deletes(self.objects)
        self.scales = Scales(self.writes)

    def _services(self) -> list[Obj]:
        return [e.obj for e in self.store.objects.get(SERVICE_GR, {}).values()]
