"""What the controller knows about each NIC's network, and who waits for it.

GetPodNetwork must return the moment a pod's port and allocation exist, and
fail precisely when they never will. Reconcilers post results and errors
here; waiters block on an asyncio.Event that is pulsed on every change of
their key, so an answer costs no polling and no timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from services.common.errors import DeadlineExceeded, KovnError

T = TypeVar("T")


@dataclass
class Entry(Generic[T]):
    value: T | None = None
    error: KovnError | None = None
    #: The pod UID the value or error belongs to ("" for nodes).
    uid: str = ""
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class Board(Generic[T]):
    """Results by key, each with an event pulsed when it changes."""

    def __init__(self) -> None:
        self._entries: dict[str, Entry[T]] = {}

    def __len__(self) -> int:
        return sum(1 for e in self._entries.values() if e.value is not None)

    def _entry(self, key: str) -> Entry[T]:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = Entry()
        return entry

    def get(self, key: str) -> Entry[T] | None:
        return self._entries.get(key)

    def _pulse(self, entry: Entry[T]) -> None:
        old, entry.changed = entry.changed, asyncio.Event()
        old.set()

    def ready(self, key: str, value: T, uid: str = "") -> None:
        entry = self._entry(key)
        entry.value, entry.error, entry.uid = value, None, uid
        self._pulse(entry)

    def failed(self, key: str, error: KovnError, uid: str = "") -> None:
        entry = self._entry(key)
        entry.value, entry.error, entry.uid = None, error, uid
        self._pulse(entry)

    def clear(self, key: str) -> None:
        """The object is gone; waiters are woken to find out."""
        entry = self._entries.pop(key, None)
        if entry is not None:
            entry.value = None
            self._pulse(entry)

    async def wait(
        self,
        key: str,
        accept: Callable[[Entry[T]], bool],
        timeout: float | None,
        *,
        what: str,
    ) -> Entry[T]:
        """Until `accept(entry)` holds for `key`; DeadlineExceeded after `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            entry = self._entry(key)
            if accept(entry):
                return entry
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise DeadlineExceeded(f"{what} is not ready yet")
            try:
                await asyncio.wait_for(entry.changed.wait(), remaining)
            except TimeoutError:
                raise DeadlineExceeded(f"{what} is not ready yet") from None
