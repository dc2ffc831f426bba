"""What kube-controller-manager would do, reduced to what the API's own
documented behaviour depends on: the namespace controller (a deleted
namespace empties, then goes), the garbage collector (ownerReferences with
background, foreground and orphan propagation) and the service-account
controller (every namespace has "default").

Kept apart from the verbs because these run after a request has been
answered, as tasks woken by committed watch events, the way the real
controllers are woken by their informers: a namespace turning Terminating,
an owner marked for foreground deletion, an owner or a namespace's last
object going. So the dependency runs one way, as in Kubernetes: the
controllers call the verbs (`verbs.Api`); the verbs only write.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import uuid
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from .background import Background
from .deletion import FOREGROUND
from .errors import ApiError
from .options import DeleteOptions, now_str
from .resources import EVENT_GR, GR, NS_GR, Obj, ResourceType
from .store import Event
from .verbs import Api

log = structlog.get_logger(__name__)

Where = tuple[GR, str, str]
_SA_GR: GR = ("", "serviceaccounts")


class Controllers:
    def __init__(self, api: Api, background: Background, event_ttl: float = 3600.0) -> None:
        self.api = api
        self.store = api.store
        self.background = background
        self._ticker: asyncio.Task[None] | None = None
        self.namespace_lag = 0.5
        # Events expire as with the real server's --event-ttl (default 1h).
        self.event_ttl = event_ttl
        self.store.on_event.append(self._on_event)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self.background.spawn(coro)

    async def stop(self) -> None:
        """Stop the periodic work, then wait for the started work to finish."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        await self.background.settle()

    async def ensure_default_sa(self, ns: str) -> None:
        if self.store.get(_SA_GR, ns, "default") is not None:
            return
        sa = {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {
                "name": "default",
                "namespace": ns,
                "uid": str(uuid.uuid4()),
                "creationTimestamp": now_str(),
            },
        }
        ns_entry = self.store.get(NS_GR, "", ns)
        if ns_entry is None or ns_entry.obj["metadata"].get("deletionTimestamp"):
            return
        await self.api.objects.put(_SA_GR, sa, None)

    async def terminate_namespace(self, ns: str) -> None:
        """The namespace controller: delete the contents, then the namespace.

        It starts after a short lag, as the real controller does (it is woken
        by an informer and rediscovers the API first): clients such as
        `kubectl delete -k` delete a namespace and then, one by one, its
        objects, and expect to find them."""
        await asyncio.sleep(self.namespace_lag)
        for rt in self.api.registry.types():
            if not rt.namespaced or rt.version != self._storage_version(rt):
                continue
            for _, e in self.store.entries(rt.gr, ns):
                if e.obj["metadata"].get("deletionTimestamp"):
                    continue
                try:
                    await self.api.deletes.delete(
                        rt, ns, e.obj["metadata"]["name"], DeleteOptions()
                    )
                except ApiError as err:
                    if err.code != 404:
                        log.warning("namespace cleanup", namespace=ns, error=err.message)
        await self.finish_namespace(ns)

    def _storage_version(self, rt: ResourceType) -> str:
        return self.api.registry.kinds_for(rt.group, rt.plural)[0].version

    async def finish_namespace(self, ns: str) -> None:
        entry = self.store.get(NS_GR, "", ns)
        if entry is None or not entry.obj["metadata"].get("deletionTimestamp"):
            return
        for gr, items in self.store.objects.items():
            if gr == NS_GR:
                continue
            if any(k[0] == ns for k in items):
                return
        obj = entry.obj
        new = copy.deepcopy(obj)
        # Only its own finalizer is the namespace controller's to remove;
        # others are cleared by their owners through namespaces/finalize.
        spec = new.setdefault("spec", {})
        spec["finalizers"] = [f for f in spec.get("finalizers") or [] if f != "kubernetes"]
        if spec["finalizers"] or new["metadata"].get("finalizers"):
            if new != obj:
                await self.api.objects.put(NS_GR, new, obj)
            return
        await self.api.objects.remove(NS_GR, new)

    def _on_event(self, ev: Event) -> None:
        if ev.type == "DELETED":
            self._on_deleted(ev)
            return
        meta = ev.obj["metadata"]
        if ev.gr == NS_GR:
            self._on_namespace(ev)
        if (
            meta.get("deletionTimestamp")
            and FOREGROUND in (meta.get("finalizers") or [])
            and (ev.old is None or FOREGROUND not in (ev.old["metadata"].get("finalizers") or []))
        ):
            # Deleted in the foreground: the owner waits for its dependents.
            for dep in self.store.dependents(meta.get("uid", "")):
                self.spawn(self.collect(dep, force=True))

    def _on_namespace(self, ev: Event) -> None:
        name = ev.obj["metadata"]["name"]
        if ev.old is None:
            # The service-account controller's job: every namespace has "default".
            self.spawn(self.ensure_default_sa(name))
        elif _terminating(ev.obj) and not _terminating(ev.old):
            self.spawn(self.terminate_namespace(name))
        elif (
            ev.obj["metadata"].get("deletionTimestamp")
            and ev.old["metadata"].get("deletionTimestamp")
            and not (ev.obj.get("spec") or {}).get("finalizers")
        ):
            # namespaces/finalize emptied the list: the namespace may go once empty.
            self.spawn(self.finish_namespace(name))

    def _on_deleted(self, ev: Event) -> None:
        uid = ev.obj["metadata"].get("uid", "")
        for dep in self.store.dependents(uid):
            self.spawn(self.collect(dep))
        for ref in ev.obj["metadata"].get("ownerReferences") or []:
            where = self.store.uids.get(ref.get("uid", "")) if isinstance(ref, dict) else None
            if where is not None and not self.store.dependents(ref["uid"]):
                self.spawn(self._finish_foreground(where))
        if not ev.ns:
            return
        ns_entry = self.store.get(NS_GR, "", ev.ns)
        if ns_entry is not None and ns_entry.obj["metadata"].get("deletionTimestamp"):
            self.spawn(self.finish_namespace(ev.ns))

    async def collect(self, where: Where, force: bool = False) -> None:
        """The garbage collector: delete a dependent whose owners are all gone
        (background propagation), or whose owner is being deleted in the
        foreground (force)."""
        gr, ns, name = where
        entry = self.store.get(gr, ns, name)
        if entry is None or entry.obj["metadata"].get("deletionTimestamp"):
            return
        refs = entry.obj["metadata"].get("ownerReferences") or []
        if not force and any(r.get("uid") in self.store.uids for r in refs if isinstance(r, dict)):
            return
        rts = self.api.registry.kinds_for(*gr)
        if not rts:
            return
        try:
            await self.api.deletes.delete(rts[0], ns, name, DeleteOptions())
        except ApiError as e:
            if e.code != 404:
                log.warning("garbage collection", object=f"{gr}/{ns}/{name}", error=e.message)

    async def _finish_foreground(self, where: Where) -> None:
        gr, ns, name = where
        entry = self.store.get(gr, ns, name)
        if entry is None or FOREGROUND not in (entry.obj["metadata"].get("finalizers") or []):
            return
        new = json.loads(entry.raw)
        new["metadata"]["finalizers"] = [
            f for f in new["metadata"]["finalizers"] if f != FOREGROUND
        ]
        if not new["metadata"]["finalizers"]:
            del new["metadata"]["finalizers"]
        if self.api.objects.removable(new):
            await self.api.objects.remove(gr, new)
        else:
            await self.api.objects.put(gr, new, entry.obj)

    def resume(self) -> None:
        """After a restart: finish terminating namespaces, collect dependents
        whose owners went away."""
        for uid in self.store.owner_uids():
            if uid not in self.store.uids:
                for dep in self.store.dependents(uid):
                    self.spawn(self.collect(dep))
        for e in list(self.store.objects.get(NS_GR, {}).values()):
            if e.obj["metadata"].get("deletionTimestamp"):
                self.spawn(self.terminate_namespace(e.obj["metadata"]["name"]))
        self._ticker = asyncio.get_running_loop().create_task(self._expire_events_forever())

    async def _expire_events_forever(self) -> None:
        while True:
            await asyncio.sleep(min(60.0, max(self.event_ttl / 10, 0.05)))
            await self.expire_events()

    async def expire_events(self) -> None:
        """Delete events whose last activity is older than the TTL."""
        cutoff = datetime.now(UTC) - timedelta(seconds=self.event_ttl)
        gr = EVENT_GR
        for (ns, name), e in list(self.store.objects.get(gr, {}).items()):
            ev = e.obj
            meta = ev["metadata"]
            stamps = (ev.get("lastTimestamp"), ev.get("eventTime"), meta.get("creationTimestamp"))
            times = [t for t in (_parse_time(x) for x in stamps if isinstance(x, str)) if t]
            newest = max(times, default=None)
            if newest is not None and newest < cutoff and self.store.get(gr, ns, name) is e:
                await self.api.objects.remove(gr, ev)


def _parse_time(s: str) -> datetime | None:
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ"):
        try:
            return datetime.strptime(s, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def _terminating(ns: Obj) -> bool:
    """Marked for deletion by DELETE (see `deletion`), for this controller to empty."""
    return (
        bool(ns["metadata"].get("deletionTimestamp"))
        and (ns.get("status") or {}).get("phase") == "Terminating"
    )
