"""Informers and per-object workers: what every controller stand-in runs on.

The controllers kube-controller-manager runs are driven by watches, not by
polling: an informer lists a resource once, then follows its watch and keeps
a cache; a change marks the affected objects' keys dirty, and each key gets
its own worker task that reconciles the object's current cached state. A
key is never reconciled twice at once, and ten changes during one run cost
one more run, not ten (as `services/controller/workqueue.py` does for kovn's
controller, and `sandbox/kubelet.py` with a worker per pod).

A controller also writes its own results into the cache ("write-through"):
a ReplicaSet reconciled again before the watch has delivered the pods it
just created must not create them twice. The real controllers keep
"expectations" for that; reading one's own writes is the simpler guarantee
in a single process.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import aiohttp
import structlog

from sandbox.controllers.podutil import controller_ref
from services.common.kube import KubeClient, KubeError
from services.common.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped kinds
Handler = Callable[[str, Obj, Obj | None], None]  # (event type, object, previous)

BACKOFF_START = 0.2
BACKOFF_MAX = 10.0


def key_of(obj: Obj) -> Key:
    md = obj["metadata"]
    return (md.get("namespace") or "", md["name"])


def _rv(obj: Obj) -> int:
    # The sandbox's resourceVersions are counters; only ordering is needed.
    try:
        return int(obj["metadata"].get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


class Informer:
    """A cache of one resource kept current by list + watch, with handlers.

    `path` is the collection (all namespaces); `query` narrows it (label
    selector). An informer whose events come from elsewhere (the agents'
    single pod watch) is fed through `apply` and never `run`.
    """

    def __init__(
        self,
        kube: KubeClient,
        path: str,
        kind: str,
        api_version: str,
        *,
        query: dict[str, str] | None = None,
    ) -> None:
        self.kube = kube
        self.path = path
        # List items come without kind and apiVersion; events and owner
        # references need them, so the cache fills them in.
        self.kind = kind
        self.api_version = api_version
        self.query = query or {}
        self.items: dict[Key, Obj] = {}
        self.handlers: list[Handler] = []
        self.synced = asyncio.Event()
        # uids this process deleted and saw gone: a late event must not bring them back.
        self._gone: set[str] = set()

    # -- the cache ----------------------------------------------------------

    def get(self, ns: str, name: str) -> Obj | None:
        return self.items.get((ns, name))

    def objects(self, ns: str | None = None) -> list[Obj]:
        if ns is None:
            return list(self.items.values())
        return [o for (n, _), o in self.items.items() if n == ns]

    def apply(self, kind: str, obj: Obj) -> None:
        """A watch event: update the cache, then tell the handlers."""
        obj.setdefault("kind", self.kind)
        obj.setdefault("apiVersion", self.api_version)
        key = key_of(obj)
        uid = obj["metadata"].get("uid", "")
        old = self.items.get(key)
        if kind == "DELETED":
            self._gone.discard(uid)
            if old is None or old["metadata"].get("uid") != uid:
                return
            del self.items[key]
        else:
            if uid in self._gone:
                return
            if old is not None and old["metadata"].get("uid") == uid and _rv(old) > _rv(obj):
                return  # our own write-through is newer than this event
            self.items[key] = obj
        for h in self.handlers:
            h(kind, obj, old)

    def wrote(self, obj: Obj) -> None:
        """Our own create/update answered with `obj`: cache it now."""
        if obj.get("metadata", {}).get("name"):
            self.apply("MODIFIED", obj)

    def removed(self, obj: Obj) -> None:
        """Our own delete removed `obj` at once (no grace): drop it now."""
        self.apply("DELETED", obj)
        self._gone.add(obj["metadata"].get("uid", ""))

    def replace(self, items: list[Obj]) -> None:
        """A fresh listing: what it lacks was deleted while we were not watching."""
        live = {key_of(o) for o in items}
        for key, obj in list(self.items.items()):
            if key not in live:
                self.apply("DELETED", obj)
        for o in items:
            self.apply("MODIFIED", o)

    # -- list + watch -------------------------------------------------------

    async def run(self) -> None:
        """List, then watch from the list's resourceVersion; relist on 410 Gone."""
        backoff = BACKOFF_START
        while True:
            try:
                listing = await self.kube.get(self.path, query=self.query or None)
                rv = str(listing["metadata"].get("resourceVersion", ""))
                self.replace(listing.get("items") or [])
                self.synced.set()
                while True:
                    expired = False
                    async for ev in self.kube.watch(
                        self.path, rv, timeout_seconds=None, query=self.query or None
                    ):
                        obj = ev.get("object") or {}
                        if ev.get("type") == "ERROR":
                            expired = obj.get("code") == 410
                            log.info("watch error", path=self.path, status=obj)
                            break
                        rv = str(obj.get("metadata", {}).get("resourceVersion", rv))
                        if ev.get("type") != "BOOKMARK":
                            self.apply(str(ev["type"]), obj)
                    backoff = BACKOFF_START
                    if expired:
                        break
            except (aiohttp.ClientError, KubeError, OSError, ValueError) as e:
                log.warning("watch failed", path=self.path, error=str(e), retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)


class Requeue(Exception):
    """Raised by a reconcile that wants to run again after `delay` seconds."""

    def __init__(self, reason: str, delay: float = BACKOFF_START) -> None:
        super().__init__(reason)
        self.delay = delay


class KeyedWorkers:
    """One worker task per dirty key: serial per object, parallel across objects.

    Keys added before `start()` wait: a controller must not act on a half
    synced cache (a ReplicaSet seen before its pods would create them again).
    """

    def __init__(self, name: str, reconcile: Callable[[Key], Awaitable[None]]) -> None:
        self.name = name
        self.reconcile = reconcile
        self.started = False
        self._tasks: dict[Key, asyncio.Task[None]] = {}
        self._dirty: set[Key] = set()
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._failures: dict[Key, int] = {}

    def add(self, key: Key) -> None:
        self._dirty.add(key)
        if not self.started or key in self._tasks:
            return  # the running worker sees it dirty and goes again
        task = asyncio.create_task(self._work(key), name=f"{self.name}-{key[0]}/{key[1]}")
        self._tasks[key] = task
        task.add_done_callback(lambda t: self._done(key, t))

    def add_after(self, key: Key, delay: float) -> None:
        """Reconcile `key` again in `delay` seconds (the earliest request wins)."""
        old = self._timers.get(key)
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        if old is not None:
            if old.when() <= when:
                return
            old.cancel()
        self._timers[key] = loop.call_at(when, self._fire, key)

    def _fire(self, key: Key) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def start(self) -> None:
        self.started = True
        for key in list(self._dirty):
            self._dirty.discard(key)
            self.add(key)

    async def _work(self, key: Key) -> None:
        while key in self._dirty:
            self._dirty.discard(key)
            try:
                await self.reconcile(key)
                self._failures.pop(key, None)
            except asyncio.CancelledError:
                raise
            except Requeue as e:
                self.add_after(key, e.delay)
            except Exception as e:
                n = self._failures.get(key, 0) + 1
                self._failures[key] = n
                delay = min(BACKOFF_MAX, BACKOFF_START * 2 ** (n - 1))
                if isinstance(e, KubeError | aiohttp.ClientError | OSError):
                    log.info(
                        "reconcile will retry",
                        controller=self.name,
                        key="/".join(key),
                        error=str(e),
                        delay=delay,
                    )
                else:
                    log.warning(
                        "reconcile failed",
                        controller=self.name,
                        key="/".join(key),
                        delay=delay,
                        exc_info=True,
                    )
                if isinstance(e, KubeError) and e.status == 409:
                    delay = BACKOFF_START / 4  # a conflict: re-read the cache and go again
                self.add_after(key, delay)

    def _done(self, key: Key, task: asyncio.Task[None]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        if self.started and key in self._dirty and not task.cancelled():
            self.add(key)

    async def close(self) -> None:
        self.started = False
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        await asyncio.gather(*(cancel_and_wait(t) for t in list(self._tasks.values())))
        self._tasks.clear()

    async def idle(self) -> None:
        """Until no worker runs (for tests)."""
        while self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*self._tasks.values(), return_exceptions=True)


async def write_status(kube: KubeClient, cache: Informer, path: str, status: Obj) -> bool:
    """Merge-patch `status` at the status subresource `path`, caching the answer.

    Every workload controller ends its reconcile so, once it has seen the
    status change; the object may have gone meanwhile, which is no error:
    False then (its controller has nothing more to do for it).
    """
    try:
        out = await kube.merge_patch(path, {"status": status})
    except KubeError as e:
        if e.status == 404:
            return False
        raise
    cache.wrote(out)
    return True


class KeyedController:
    """The skeleton the controllers share: one informer's objects are the keys.

    Every change to an object of `primary` reconciles that object's key, a
    resync reconciles them all, and the workers run the subclass's
    `reconcile`. Other informers' handlers (a pod to its owner) stay with
    each controller, since they differ.
    """

    def __init__(self, name: str, kube: KubeClient, primary: Informer) -> None:
        self.kube = kube
        self.primary = primary
        self.workers = KeyedWorkers(name, self.reconcile)
        primary.handlers.append(self.enqueue)

    def enqueue(self, kind: str, obj: Obj, old: Obj | None) -> None:
        """A handler: reconcile the object's own key."""
        self.workers.add(key_of(obj))

    def owner_handler(self, kind: str) -> Callable[[str, Obj, Obj | None], None]:
        """A pod handler that wakes the `kind` object controlling the pod
        (its controller ownerReference), for controllers that own pods."""

        def on_pod(event: str, pod: Obj, old: Obj | None) -> None:
            ref = controller_ref(pod)
            if ref is not None and ref.get("kind") == kind:
                self.workers.add((pod["metadata"]["namespace"], ref["name"]))

        return on_pod

    def resync(self) -> None:
        for obj in self.primary.objects():
            self.workers.add(key_of(obj))

    async def reconcile(self, key: Key) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        await self.workers.close()


class Controller(Protocol):
    """What the manager needs of each controller."""

    workers: KeyedWorkers

    def resync(self) -> None: ...

    async def close(self) -> None: ...
