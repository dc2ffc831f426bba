"""The keyed work queue: serial per key, parallel across keys, retries."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable

from services.common.errors import InvalidArgument, Unavailable
from services.controller.workqueue import WorkQueue


async def test_one_key_never_runs_twice_at_once_and_changes_are_not_lost() -> None:
    running: set[Hashable] = set()
    overlaps = 0
    calls: list[Hashable] = []
    release = asyncio.Event()
    first_started = asyncio.Event()

    async def handler(key: Hashable) -> None:
        nonlocal overlaps
        if key in running:
            overlaps += 1
        running.add(key)
        calls.append(key)
        if len(calls) == 1:
            first_started.set()
            await release.wait()
        running.discard(key)

    q = WorkQueue("test", handler, workers=4)
    q.start()
    q.add("a")
    await asyncio.wait_for(first_started.wait(), 5)
    for _ in range(5):
        q.add("a")  # while "a" runs: coalesced into one more run
    release.set()
    await asyncio.wait_for(q.wait_idle(), 5)
    await q.stop()
    assert overlaps == 0
    assert calls == ["a", "a"]


async def test_keys_run_in_parallel() -> None:
    started: set[Hashable] = set()
    both = asyncio.Event()

    async def handler(key: Hashable) -> None:
        started.add(key)
        if len(started) == 2:
            both.set()
        await asyncio.wait_for(both.wait(), 5)  # deadlocks if serial

    q = WorkQueue("test", handler, workers=2)
    q.start()
    q.add("a")
    q.add("b")
    await asyncio.wait_for(q.wait_idle(), 5)
    await q.stop()
    assert started == {"a", "b"}


async def test_temporary_errors_retry_permanent_errors_are_reported_once() -> None:
    attempts: dict[Hashable, int] = {"flaky": 0, "bad": 0}
    reported: list[tuple[Hashable, str]] = []

    async def handler(key: Hashable) -> None:
        attempts[key] += 1
        if key == "flaky" and attempts[key] < 3:
            raise Unavailable("ipam down", retry_after=0.01)
        if key == "bad":
            raise InvalidArgument("10.0.0.300 is not an IP", field="kovn.io/ip_address")

    async def on_permanent(key: Hashable, exc: BaseException) -> None:
        reported.append((key, str(exc)))

    q = WorkQueue("test", handler, workers=2, on_permanent=on_permanent)
    q.start()
    q.add("flaky")
    q.add("bad")
    await asyncio.wait_for(q.wait_idle(), 5)
    await q.stop()
    assert attempts == {"flaky": 3, "bad": 1}
    assert reported == [("bad", "kovn.io/ip_address: 10.0.0.300 is not an IP")]
