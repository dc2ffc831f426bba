"""Storing and removing objects, with what has to happen in the same step.

Most writes are the store's business alone, but a CRD's are not: once a
CRD is stored its resources are served (the registry learns them before
the request is answered), and once it is removed its objects go with it and
their watches end. Every verb and controller writes through `Objects`, so
that rule holds however the write came about; and because this layer sits
below both the verbs and the controllers, the controllers can call the
verbs without the verbs knowing the controllers.
"""

from __future__ import annotations

import asyncio

from .background import Background
from .errors import not_found
from .registry import Registry
from .resources import CRD_GR, GR, Obj, ResourceType
from .store import Entry, Store


class Objects:
    def __init__(self, store: Store, registry: Registry, background: Background) -> None:
        self.store = store
        self.registry = registry
        self.background = background

    def resume(self) -> None:
        """After a restart: serve the stored CRDs."""
        for e in self.store.objects.get(CRD_GR, {}).values():
            self.registry.set_crd(e.obj)

    def find(self, rt: ResourceType, ns: str, name: str) -> Entry | None:
        return self.store.get(rt.gr, ns if rt.namespaced else "", name)

    def get(self, rt: ResourceType, ns: str, name: str) -> Entry:
        entry = self.find(rt, ns, name)
        if entry is None:
            raise not_found(rt.plural, rt.group, name)
        return entry

    async def put(self, gr: GR, obj: Obj, old: Obj | None) -> Obj:
        """Store a created or changed object; returns it once committed."""
        entry, fut = self.store.put(gr, obj, old)
        if gr == CRD_GR:
            self.registry.set_crd(entry.obj)
        await fut
        return entry.obj

    async def remove(self, gr: GR, obj: Obj) -> Obj:
        """Delete an object for good; returns its final state once committed."""
        final, fut = self.store.remove(gr, obj)
        if gr == CRD_GR:
            self._drop_crd(final)
        await fut
        return final

    @staticmethod
    def removable(obj: Obj) -> bool:
        """Marked for deletion with nothing left to wait for: no finalizers,
        no grace period running."""
        meta = obj["metadata"]
        return bool(
            meta.get("deletionTimestamp")
            and not meta.get("finalizers")
            and not meta.get("deletionGracePeriodSeconds")
        )

    def _drop_crd(self, crd: Obj) -> None:
        spec = crd.get("spec") or {}
        gr = (spec.get("group", ""), (spec.get("names") or {}).get("plural", ""))
        self.registry.drop_crd(crd["metadata"]["name"])
        futs = [self.store.remove(gr, obj)[1] for obj in list(self.store.drop_gr(gr))]

        async def end_watches() -> None:
            # Watchers see every object's DELETED event, then their stream ends.
            await asyncio.gather(*futs, return_exceptions=True)
            self.store.end_watches(gr)

        self.background.spawn(end_watches())
