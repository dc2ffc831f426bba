"""The in-memory index of every object, the resourceVersion clock, the
bounded event history and the live watches.

All mutation happens on the event loop thread without awaiting in between,
so a read-check-write sequence in the API layer is atomic without locks.
Each write gets the next cluster-wide resourceVersion, is queued for group
commit to SQLite, and its watch event is delivered to watchers only after
that commit, so no watcher sees a change a crash could take back.
"""

from __future__ import annotations

import asyncio
import bisect
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from .errors import ApiError, gone
from .persistence import Persistence
from .resources import GR, POD_GR, Obj
from .selectors import FieldReq, Requirement, fields_match, labels_match

log = structlog.get_logger(__name__)


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(slots=True)
class Entry:
    obj: Obj
    raw: bytes


@dataclass(slots=True)
class Event:
    type: str
    rv: int
    gr: GR
    ns: str
    obj: Obj
    raw: bytes
    old: Obj | None


@dataclass(eq=False)
class Watcher:
    """One watch stream's filter and outbox."""

    gr: GR
    ns: str | None
    labels: list[Requirement]
    fields: list[FieldReq]
    render: Callable[[str, Obj, bytes | None], bytes]
    queue: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    max_backlog: int = 100_000
    closed: bool = False
    # Events at or below this version are already reflected in what was sent.
    min_rv: int = 0

    def node(self) -> str | None:
        """The node a pod watch is scoped to by spec.nodeName=X, if any."""
        if self.gr != POD_GR:
            return None
        return next((f.value for f in self.fields if f.key == "spec.nodeName" and f.equal), None)

    def matches(self, obj: Obj) -> bool:
        return labels_match(self.labels, obj) and fields_match(self.fields, obj)

    def offer(self, ev: Event) -> None:
        if self.closed or ev.rv <= self.min_rv or (self.ns is not None and ev.ns != self.ns):
            return
        line: bytes | None = None
        if ev.type == "MODIFIED" and ev.old is not None and (self.labels or self.fields):
            now, before = self.matches(ev.obj), self.matches(ev.old)
            if now and not before:
                line = self.render("ADDED", ev.obj, ev.raw)
            elif before and not now:
                # As Kubernetes does: the object as it was, at the new version.
                gone_obj = dict(ev.old)
                gone_obj["metadata"] = {**ev.old["metadata"], "resourceVersion": str(ev.rv)}
                line = self.render("DELETED", gone_obj, None)
            elif now:
                line = self.render("MODIFIED", ev.obj, ev.raw)
        elif self.matches(ev.obj):
            line = self.render(ev.type, ev.obj, ev.raw)
        if line is not None:
            self.push(line)

    def push(self, line: bytes | None) -> None:
        if self.queue.qsize() >= self.max_backlog:
            # A watcher this far behind is cut off, as the real server does;
            # the client re-lists or resumes from its last version.
            self.closed = True
            self.queue.put_nowait(None)
            return
        self.queue.put_nowait(line)


class Store:
    def __init__(self, state_dir: Path, history_size: int = 50_000) -> None:
        self._db = Persistence(state_dir / "kubeapi.sqlite", self._dispatch)
        self.objects: dict[GR, dict[tuple[str, str], Entry]] = {}
        self.rv = 0
        self.committed_rv = 0
        self._history: list[Event] = []
        self._history_size = history_size
        # Events at or below this version may have been dropped from history.
        self._floor = 0
        self._watchers: dict[GR, set[Watcher]] = {}
        # Pod watches scoped to one node (spec.nodeName=X), by node: with a
        # watch per node, an event is offered to its node's watches only.
        self._node_watchers: dict[str, set[Watcher]] = {}
        # Sorted keys per kind, rebuilt lazily after a create or delete.
        self._sorted: dict[GR, list[tuple[str, str]]] = {}
        # Pods by spec.nodeName: every node agent lists and watches its share.
        self._by_node: dict[str, set[tuple[str, str]]] = {}
        # For garbage collection: where each uid lives, and who names it owner.
        self.uids: dict[str, tuple[GR, str, str]] = {}
        self._dependents: dict[str, set[tuple[GR, str, str]]] = {}
        self.on_event: list[Callable[[Event], None]] = []

    def load(self) -> None:
        rv, rows = self._db.load()
        for key, data in rows:
            group, plural, ns, name = key.split("/", 3)
            obj = json.loads(data)
            self.objects.setdefault((group, plural), {})[(ns, name)] = Entry(obj, data)
            if (group, plural) == POD_GR:
                self._index_pod((ns, name), None, obj)
            self._index_refs((group, plural), ns, name, None, obj)
        self.rv = self.committed_rv = self._floor = rv

    def start(self) -> None:
        self._db.start()

    async def close_watches(self) -> None:
        for ws in [*self._watchers.values(), *self._node_watchers.values()]:
            for w in ws:
                w.closed = True
                w.queue.put_nowait(None)

    async def close(self) -> None:
        await self.close_watches()
        await self._db.close()

    # ---- reads -------------------------------------------------------------
    def get(self, gr: GR, ns: str, name: str) -> Entry | None:
        return self.objects.get(gr, {}).get((ns, name))

    def entries(self, gr: GR, ns: str | None) -> list[tuple[tuple[str, str], Entry]]:
        """(namespace, name) -> entry pairs in key order, as lists are sorted."""
        items = self.objects.get(gr, {})
        keys = self._sorted.get(gr)
        if keys is None:
            keys = self._sorted[gr] = sorted(items)
        if ns is None:
            return [(k, items[k]) for k in keys]
        # Keys sort by (namespace, name): one namespace is a contiguous slice.
        lo = bisect.bisect_left(keys, (ns,))
        hi = bisect.bisect_left(keys, (ns + "\x00",))
        return [(k, items[k]) for k in keys[lo:hi]]

    def pods_on_node(self, ns: str | None, node: str) -> list[tuple[tuple[str, str], Entry]]:
        items = self.objects.get(POD_GR, {})
        keys = sorted(self._by_node.get(node, ()))
        return [(k, items[k]) for k in keys if ns is None or k[0] == ns]

    def dependents(self, owner_uid: str) -> list[tuple[GR, str, str]]:
        return sorted(self._dependents.get(owner_uid, ()))

    def owner_uids(self) -> list[str]:
        return list(self._dependents)

    def _index_refs(self, gr: GR, ns: str, name: str, old: Obj | None, new: Obj | None) -> None:
        where = (gr, ns, name)
        if old is not None:
            if new is None:
                self.uids.pop(old["metadata"].get("uid", ""), None)
            for ref in old["metadata"].get("ownerReferences") or []:
                deps = self._dependents.get(ref.get("uid", ""))
                if deps is not None:
                    deps.discard(where)
                    if not deps:
                        del self._dependents[ref.get("uid", "")]
        if new is not None:
            self.uids[new["metadata"].get("uid", "")] = where
            for ref in new["metadata"].get("ownerReferences") or []:
                if isinstance(ref, dict) and ref.get("uid"):
                    self._dependents.setdefault(ref["uid"], set()).add(where)

    def _index_pod(self, key: tuple[str, str], old: Obj | None, new: Obj | None) -> None:
        before = ((old or {}).get("spec") or {}).get("nodeName") or ""
        after = ((new or {}).get("spec") or {}).get("nodeName") or ""
        if old is not None and (new is None or before != after):
            keys = self._by_node.get(before)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_node[before]
        if new is not None:
            self._by_node.setdefault(after, set()).add(key)

    def count(self, gr: GR, ns: str | None = None) -> int:
        items = self.objects.get(gr, {})
        if ns is None:
            return len(items)
        return sum(1 for k in items if k[0] == ns)

    # ---- writes ------------------------------------------------------------
    def _writable(self) -> None:
        if self._db.failed is not None:
            raise ApiError(
                503,
                f"storage failed ({self._db.failed}); writes are refused until the API server "
                "is restarted",
                "ServiceUnavailable",
            )

    def next_rv(self) -> int:
        self._writable()
        self.rv += 1
        return self.rv

    def put(self, gr: GR, obj: Obj, old: Obj | None) -> tuple[Entry, asyncio.Future[None]]:
        """Store a created or changed object under a fresh resourceVersion."""
        rv = self.next_rv()
        obj["metadata"]["resourceVersion"] = str(rv)
        ns = obj["metadata"].get("namespace", "")
        name = obj["metadata"]["name"]
        raw = dumps(obj)
        entry = Entry(obj, raw)
        items = self.objects.setdefault(gr, {})
        if (ns, name) not in items:
            self._sorted.pop(gr, None)
        items[(ns, name)] = entry
        if gr == POD_GR:
            self._index_pod((ns, name), old, obj)
        self._index_refs(gr, ns, name, old, obj)
        ev = Event("MODIFIED" if old is not None else "ADDED", rv, gr, ns, obj, raw, old)
        fut = self._db.write([(_key(gr, ns, name), raw)], rv, [ev])
        return entry, fut

    def remove(self, gr: GR, obj: Obj) -> tuple[Obj, asyncio.Future[None]]:
        """Delete an object; the DELETED event carries the deletion's version."""
        rv = self.next_rv()
        ns = obj["metadata"].get("namespace", "")
        name = obj["metadata"]["name"]
        self.objects.get(gr, {}).pop((ns, name), None)
        self._sorted.pop(gr, None)
        if gr == POD_GR:
            self._index_pod((ns, name), obj, None)
        self._index_refs(gr, ns, name, obj, None)
        final = dict(obj)
        final["metadata"] = {**obj["metadata"], "resourceVersion": str(rv)}
        raw = dumps(final)
        ev = Event("DELETED", rv, gr, ns, final, raw, obj)
        fut = self._db.write([(_key(gr, ns, name), None)], rv, [ev])
        return final, fut

    def _dispatch(self, events: list[Event]) -> None:
        for ev in events:
            self.committed_rv = max(self.committed_rv, ev.rv)
            self._history.append(ev)
            for w in self._watchers.get(ev.gr, ()):
                w.offer(ev)
            if ev.gr == POD_GR and self._node_watchers:
                node = (ev.obj.get("spec") or {}).get("nodeName") or ""
                for w in self._node_watchers.get(node, ()):
                    w.offer(ev)
                if ev.old is not None:
                    before = (ev.old.get("spec") or {}).get("nodeName") or ""
                    if before != node:
                        for w in self._node_watchers.get(before, ()):
                            w.offer(ev)
            for hook in self.on_event:
                hook(ev)
        if len(self._history) > 2 * self._history_size:
            cut = len(self._history) - self._history_size
            self._floor = self._history[cut - 1].rv
            del self._history[:cut]

    # ---- watches -----------------------------------------------------------
    def watch(self, w: Watcher, since: int | None, initial: Iterable[Entry]) -> None:
        """Register a watch; `since` replays history after that version,
        `initial` (when since is None) sends the current state as ADDED."""
        if since is not None:
            if since < 0 or since > self.rv:
                raise gone(f"resource version newer than this server's ({self.rv}); relist")
            if since < self._floor:
                raise gone(f"too old resource version: {since} ({self._floor + 1})")
            w.min_rv = since
            start = bisect.bisect_right(self._history, since, key=lambda e: e.rv)
            for ev in self._history[start:]:
                if ev.gr == w.gr:
                    w.offer(ev)
        else:
            # Writes not yet committed are in the snapshot already.
            w.min_rv = self.rv
            for e in initial:
                w.push(w.render("ADDED", e.obj, e.raw))
        node = w.node()
        if node is not None:
            self._node_watchers.setdefault(node, set()).add(w)
        else:
            self._watchers.setdefault(w.gr, set()).add(w)

    def end_watches(self, gr: GR) -> None:
        """End every watch on a kind (its CRD is gone)."""
        for w in list(self._watchers.get(gr, ())):
            w.push(None)

    def watch_count(self) -> int:
        return sum(len(ws) for ws in self._watchers.values()) + sum(
            len(ws) for ws in self._node_watchers.values()
        )

    def unwatch(self, w: Watcher) -> None:
        w.closed = True
        node = w.node()
        if node is not None:
            ws = self._node_watchers.get(node)
            if ws is not None:
                ws.discard(w)
                if not ws:
                    del self._node_watchers[node]
        else:
            self._watchers.get(w.gr, set()).discard(w)

    def drop_gr(self, gr: GR) -> list[Obj]:
        """All objects of a kind (for deleting a CRD's resources)."""
        return [e.obj for e in self.objects.get(gr, {}).values()]


def _key(gr: GR, ns: str, name: str) -> str:
    return f"{gr[0]}/{gr[1]}/{ns}/{name}"
