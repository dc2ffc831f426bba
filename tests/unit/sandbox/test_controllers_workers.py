"""The controllers' plumbing: one worker per key, coalescing, write-through.

A reconcile must never run twice at once for one object (two ReplicaSet
runs would both create the missing pods), changes during a run must cost
one more run and not one per change, and the controller's own writes must
be visible before the watch delivers them."""

from __future__ import annotations

import asyncio
from typing import Any

from sandbox.controllers.base import Informer, Key, KeyedWorkers

Obj = dict[str, Any]


def obj(name: str, rv: int, uid: str = "u1") -> Obj:
    return {"metadata": {"name": name, "namespace": "ns", "uid": uid, "resourceVersion": str(rv)}}


async def test_serial_per_key_parallel_across_keys_and_coalesced() -> None:
    running: set[Key] = set()
    overlap: list[Key] = []
    runs: list[Key] = []
    gate = asyncio.Event()

    async def reconcile(key: Key) -> None:
        if key in running:
            overlap.append(key)
        running.add(key)
        runs.append(key)
        await gate.wait()
        running.discard(key)

    w = KeyedWorkers("t", reconcile)
    w.add(("ns", "a"))  # before start: waits
    await asyncio.sleep(0)
    assert runs == []
    w.start()
    w.add(("ns", "b"))
    await asyncio.sleep(0.01)
    assert sorted(runs) == [("ns", "a"), ("ns", "b")]  # both at once
    for _ in range(10):
        w.add(("ns", "a"))  # during its run: one more run, not ten
    gate.set()
    await asyncio.sleep(0.01)
    await w.idle()
    assert runs.count(("ns", "a")) == 2 and not overlap
    await w.close()


async def test_failures_retry() -> None:
    calls = 0

    async def reconcile(key: Key) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("blip")

    w = KeyedWorkers("t", reconcile)
    w.start()
    w.add(("ns", "a"))
    for _ in range(50):
        await asyncio.sleep(0.02)
        if calls >= 2:
            break
    assert calls == 2
    await w.close()


def test_write_through_beats_an_older_event_and_tombstones() -> None:
    inf = Informer(None, "/x", "Pod", "v1")  # type: ignore[arg-type]
    seen: list[str] = []
    inf.handlers.append(lambda kind, o, old: seen.append(kind))
    inf.wrote(obj("a", 5))
    inf.apply("MODIFIED", obj("a", 4))  # the watch lags behind our own write
    assert inf.get("ns", "a") is not None
    assert inf.get("ns", "a")["metadata"]["resourceVersion"] == "5"  # type: ignore[index]
    inf.removed(obj("a", 6))
    inf.apply("MODIFIED", obj("a", 5))  # a late event must not resurrect it
    assert inf.get("ns", "a") is None
    inf.apply("DELETED", obj("a", 7))
    inf.apply("ADDED", obj("a", 8, uid="u2"))  # same name, new object
    assert inf.get("ns", "a") is not None
    inf.replace([])
    assert inf.objects() == [] and seen[-1] == "DELETED"
