"""List+watch of one resource into an in-memory cache (an "informer").

It lists once, then watches from the list's resourceVersion, resuming from
the last version it saw (bookmarks keep that version fresh on quiet
streams). A 410 Gone means the history it needs is gone: it lists again and
reports the difference (objects that vanished meanwhile become deletions).
A dropped connection is retried with exponential backoff. Objects are
trimmed by `transform` before caching, so 10,000 pods do not cost 10,000
full pod specs of memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog

from services.common.kube import KubeClient, KubeError, Obj
from services.common.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"
Listener = Callable[[str, str, Obj | None, Obj | None], None]
"""Called with (event type, key, old object, new object) after the cache changed."""


def object_key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))


def keep_all(obj: Obj) -> Obj:
    return obj


class Informer:
    """Keeps `cache` equal to the collection at `path`, calling listeners."""

    def __init__(
        self,
        kube: KubeClient,
        kind: str,
        path: str,
        *,
        transform: Callable[[Obj], Obj] = keep_all,
        watch_timeout: int = 300,
        max_backoff: float = 10.0,
    ) -> None:
        self.kube = kube
        self.kind = kind
        self.path = path
        self.transform = transform
        self.watch_timeout = watch_timeout
        self.max_backoff = max_backoff
        self.cache: dict[str, Obj] = {}
        self.resource_version = ""
        self.synced = asyncio.Event()
        self.lists = 0
        self._listeners: list[Listener] = []
        self._task: asyncio.Task[None] | None = None

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def get(self, key: str) -> Obj | None:
        return self.cache.get(key)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"informer-{self.kind}")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    def _emit(self, kind: str, key: str, old: Obj | None, new: Obj | None) -> None:
        for listener in self._listeners:
            try:
                listener(kind, key, old, new)
            except Exception:
                log.exception("informer listener failed", kind=self.kind, key=key)

    async def _list(self) -> bool:
        """List into the cache; False when the API does not serve the
        resource (yet): a CRD not installed is an empty collection, not an
        outage, so the controller still serves everything else."""
        try:
            items, rv = await self.kube.list(self.path)
        except KubeError as exc:
            if exc.status != 404:
                raise
            items, rv = [], ""
        self.lists += 1
        fresh = {object_key(o): self.transform(o) for o in items}
        old_cache, self.cache = self.cache, fresh
        self.resource_version = rv
        for key, obj in fresh.items():
            old = old_cache.get(key)
            if old is None:
                self._emit(ADDED, key, None, obj)
            elif _rv(old) != _rv(obj):
                self._emit(MODIFIED, key, old, obj)
        for key, old in old_cache.items():
            if key not in fresh:
                self._emit(DELETED, key, old, None)
        self.synced.set()
        return bool(rv)

    async def _run(self) -> None:
        failures = 0
        # Restarted after a stop: resume the watch where it left off.
        need_list = not self.synced.is_set()
        while True:
            try:
                if need_list:
                    if not await self._list():
                        failures += 1
                        delay = min(self.max_backoff, 0.1 * 2 ** min(failures, 10))
                        log.info("resource not served; listing again later", kind=self.kind)
                        await asyncio.sleep(delay)  # until its CRD is installed
                        continue
                    need_list = False
                gone = await self._watch()
                failures = 0
                if gone:
                    log.info("watch history expired; listing again", kind=self.kind)
                    need_list = True
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any stream failure: reconnect, never die
                if isinstance(exc, KubeError) and exc.status == 410:
                    need_list = True
                    continue
                failures += 1
                delay = min(self.max_backoff, 0.1 * 2 ** min(failures, 10))
                log.warning(
                    "watch failed; reconnecting",
                    kind=self.kind,
                    error=str(exc),
                    delay=round(delay, 2),
                )
                await asyncio.sleep(delay)  # backoff before reconnecting

    async def _watch(self) -> bool:
        """Consume one watch stream; True when the server said 410 Gone."""
        async for event in self.kube.watch(
            self.path, self.resource_version, timeout_seconds=self.watch_timeout
        ):
            etype = event.get("type")
            raw = event.get("object") or {}
            if etype == "ERROR":
                if raw.get("code") == 410:
                    return True
                raise KubeError(
                    int(raw.get("code") or 0), raw.get("reason", ""), raw.get("message", "")
                )
            rv = _rv(raw)
            if rv:
                self.resource_version = rv
            if etype == "BOOKMARK":
                continue
            key = object_key(raw)
            if etype == DELETED:
                old = self.cache.pop(key, None)
                self._emit(DELETED, key, old, None)
                continue
            obj = self.transform(raw)
            old = self.cache.get(key)
            self.cache[key] = obj
            self._emit(ADDED if old is None else MODIFIED, key, old, obj)
        return False


def _rv(obj: Obj) -> str:
    meta: dict[str, Any] = obj.get("metadata") or {}
    return str(meta.get("resourceVersion", ""))


def trim_meta(meta: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The identity every cached object keeps (name, namespace, uid,
    resourceVersion), plus what its kind reads."""
    out = {
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        "resourceVersion": meta.get("resourceVersion"),
        **extra,
    }
    if meta.get("namespace") is not None:
        out["namespace"] = meta.get("namespace")
    return out


def trim_pod(pod: Obj) -> Obj:
    """The parts of a pod the controller reads."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    return {
        "metadata": trim_meta(
            meta,
            annotations=meta.get("annotations") or {},
            labels=meta.get("labels") or {},
            deletionTimestamp=meta.get("deletionTimestamp"),
        ),
        "spec": {
            "nodeName": spec.get("nodeName") or "",
            "hostNetwork": bool(spec.get("hostNetwork")),
            # NetworkPolicy named ports: (name, protocol, number) of the
            # containers' named ports only (numbered ones need no lookup).
            "namedPorts": [
                (p["name"], p.get("protocol") or "TCP", int(p.get("containerPort") or 0))
                for c in spec.get("containers") or ()
                for p in c.get("ports") or ()
                if p.get("name")
            ],
        },
    }


def trim_node(node: Obj) -> Obj:
    meta = node.get("metadata") or {}
    return {"metadata": trim_meta(meta, annotations=meta.get("annotations") or {})}
