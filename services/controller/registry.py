"""The kind registry: informers, queues, listeners, take-over and resync for
every kind, built from what each kind declares (`kind.py`).

Adding a kind of intent is writing its module and naming its class in
`kinds.KINDS`; nothing here changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable, Iterator, Sequence

import structlog

from services.common.kube import KubeClient, Obj
from services.controller.informer import ADDED, DELETED, Informer, Listener
from services.controller.kind import FanIn, Kind
from services.controller.nb.rows import DesiredRow
from services.controller.workqueue import WorkQueue

log = structlog.get_logger(__name__)


class Registry:
    """Every kind, its informer and its queue; the one way to fan work out."""

    def __init__(self, kinds: Sequence[Kind], informers: dict[str, Informer]) -> None:
        self.kinds = {k.name: k for k in kinds}
        for kind in kinds:
            kind.ctx.kinds = self.kinds
        self.informers = informers
        self.queues: dict[str, WorkQueue] = {}
        self._fan: dict[str, list[tuple[str, FanIn]]] = {}
        followers: dict[str, list[Kind]] = {}
        for kind in kinds:
            for source in kind.follows:
                followers.setdefault(source, []).append(kind)
        for kind in kinds:
            if kind.reconciles:
                self.queues[kind.name] = WorkQueue(
                    kind.name,
                    _announcing(kind, followers.get(kind.name, [])),
                    workers=kind.workers,
                    on_permanent=kind.report,
                )
            for source, fan in kind.fan_in().items():
                self._fan.setdefault(source, []).append((kind.name, fan))
            if kind.watch is not None:
                self.informers[kind.watch.informer].add_listener(self._listener(kind))
            for name in kind.observes:
                if name not in self.informers:
                    raise ValueError(f"{kind.name} observes {name!r}, which no kind watches")
                self.informers[name].add_listener(_observer(kind, name))

    @staticmethod
    def informers_for(kube: KubeClient, kinds: Iterable[type[Kind]]) -> dict[str, Informer]:
        """One informer per watched collection (several kinds may share one)."""
        informers: dict[str, Informer] = {}
        for cls in kinds:
            w = cls.watch
            if w is not None and w.informer not in informers:
                informers[w.informer] = Informer(kube, w.informer, w.path, transform=w.transform)
        return informers

    def _listener(self, kind: Kind) -> Listener:
        def on_event(etype: str, key: str, old: Obj | None, new: Obj | None) -> None:
            if kind.reconciles:
                if etype in (ADDED, DELETED) or kind.wants(etype, key, old, new):
                    self.enqueue(kind.name, key)
            else:
                self.changed(kind.name, key)

        return on_event

    # -- fan-out ----------------------------------------------------------------

    def enqueue(self, kind: str, key: Hashable) -> None:
        self.queues[kind].add(key)

    def changed(self, kind: str, key: Hashable) -> None:
        for target, fan in self._fan.get(kind, ()):
            for k in fan(key):
                self.queues[target].add(k)

    # -- leading ------------------------------------------------------------------

    def ordered(self) -> Iterator[Kind]:
        """In `kinds.KINDS` order: a kind's resync rows may depend on earlier ones'."""
        return iter(self.kinds.values())

    async def reconcile_first(self) -> None:
        """Take-over: the `first` kinds in full, in order; a failure goes to its queue."""
        for kind in self.ordered():
            await kind.prepare()
        for kind in self.ordered():
            if not kind.first:
                continue
            for key in sorted(kind.all_keys(), key=str):
                try:
                    await kind.reconcile(key)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.info("deferred to its queue", kind=kind.name, key=key, error=str(exc))
                    self.enqueue(kind.name, key)

    def start_queues(self) -> None:
        for queue in self.queues.values():
            queue.start()

    def enqueue_rest(self) -> None:
        """Every object of the other kinds, once (take-over)."""
        for kind in self.ordered():
            if kind.reconciles and not kind.first:
                for key in kind.all_keys():
                    self.enqueue(kind.name, key)

    async def wait_idle(self) -> None:
        for queue in self.queues.values():
            await queue.wait_idle()

    async def stop_queues(self) -> None:
        for queue in self.queues.values():
            await queue.stop()

    def desired_rows(self) -> list[DesiredRow]:
        return [row for kind in self.ordered() for row in kind.desired_rows()]


def _observer(kind: Kind, informer: str) -> Listener:
    def on_event(etype: str, key: str, old: Obj | None, new: Obj | None) -> None:
        kind.observe(informer, etype, key, old, new)

    return on_event


def _announcing(kind: Kind, followers: list[Kind]) -> Callable[[Hashable], Awaitable[None]]:
    """`kind.reconcile`, telling `followers` after each success (unwrapped when none)."""
    if not followers:
        return kind.reconcile

    async def reconcile(key: Hashable) -> None:
        await kind.reconcile(key)
        for follower in followers:
            try:
                follower.reconciled(kind.name, key)
            except Exception:
                log.exception("follower failed", kind=follower.name, source=kind.name, key=key)

    return reconcile
