"""The two rules that keep one ipam process coherent while calls overlap.

The allocator's memory is changed by many calls at once, each waiting on
the store in between. Two orderings make that safe: calls for one owner run
one after another (a retried Allocate waits for the first and returns its
answer), and a subnet or pool change waits until no allocation is in flight
and holds new ones back until it is done (allocations plan against one
definition of the subnet).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class Gate:
    """Many allocations at once, or one subnet/pool change alone."""

    def __init__(self) -> None:
        self.readers = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.open = asyncio.Event()
        self.open.set()
        self.writer = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        while not self.open.is_set():
            await self.open.wait()
        self.readers += 1
        self.idle.clear()
        try:
            yield
        finally:
            self.readers -= 1
            if self.readers == 0:
                self.idle.set()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        async with self.writer:
            self.open.clear()
            try:
                await self.idle.wait()
                yield
            finally:
                self.open.set()


class OwnerLocks:
    """One call at a time per owner key; `key in locks` while one is in flight."""

    def __init__(self) -> None:
        self._busy: dict[str, asyncio.Event] = {}

    def __contains__(self, key: str) -> bool:
        return key in self._busy

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        while (other := self._busy.get(key)) is not None:
            await other.wait()
        done = asyncio.Event()
        self._busy[key] = done
        try:
            yield
        finally:
            del self._busy[key]
            done.set()
