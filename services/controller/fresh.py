"""Consistent reads of a collection, shared by everyone waiting for one.

An informer's cache lags the API by the time a watch event takes to
arrive, and watches of different kinds are not ordered with each other. A
Subnet and a pod in its namespace applied together (`kubectl apply -f` of
both) can therefore reach the controller pod-first, and a decision made
from the cache ("no Subnet binds this namespace, use the default") would be
wrong for good: the address is allocated and the pod keeps it. For the few
decisions where a stale "absent" is unrecoverable, the controller asks the
API directly. One list serves every caller that started waiting before it
began, so a burst of pods costs a handful of lists, not one each.
"""

from __future__ import annotations

import asyncio
import time

from services.common.kube import KubeClient, Obj


class SingleFlightList:
    """`items(not_before)`: the collection as listed by a read begun after `not_before`."""

    def __init__(self, kube: KubeClient, path: str) -> None:
        self.kube = kube
        self.path = path
        self.lists = 0
        self._last: list[Obj] = []
        self._last_started = float("-inf")
        self._running: asyncio.Task[None] | None = None

    async def items(self, not_before: float) -> list[Obj]:
        while self._last_started < not_before:
            if self._running is None:
                self._running = asyncio.create_task(self._list())
            # Shielded: one caller giving up must not cancel the others' list.
            await asyncio.shield(self._running)
        return self._last

    async def _list(self) -> None:
        started = time.monotonic()
        try:
            items, _ = await self.kube.list(self.path)
            self.lists += 1
            self._last, self._last_started = items, started
        finally:
            self._running = None
