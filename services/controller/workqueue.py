"""A keyed work queue: serial per object, parallel across objects.

Watch events only mark an object's key dirty; workers later reconcile the
object's *current* state from the cache. So ten updates to a pod while it is
being handled cost one more reconcile, not ten, and two workers never handle
one object at once. Failures decide their own fate: retryable ones come
back after an exponential delay, permanent ones are reported once (an Event)
and dropped until the object changes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass

import structlog

from services.common.errors import KovnError
from services.controller import metrics

log = structlog.get_logger(__name__)

Handler = Callable[[Hashable], Awaitable[None]]
PermanentHandler = Callable[[Hashable, BaseException], Awaitable[None]]


class Retry(Exception):
    """Raised by a handler to be called again after `delay` seconds."""

    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.delay = delay


def is_retryable(exc: BaseException) -> bool:
    """Temporary failures retry; a request that can never succeed does not."""
    if isinstance(exc, Retry):
        return True
    if isinstance(exc, KovnError):
        return exc.retryable
    return True  # unknown: could be a bug or a blip; retry with backoff, logged


@dataclass
class _Backoff:
    base: float = 0.05
    cap: float = 30.0

    def delay(self, failures: int) -> float:
        return float(min(self.cap, self.base * (2 ** max(0, failures - 1))))


class WorkQueue:
    """Runs `handler(key)` with at most one call per key in flight."""

    def __init__(
        self,
        kind: str,
        handler: Handler,
        *,
        workers: int = 16,
        on_permanent: PermanentHandler | None = None,
        backoff: _Backoff | None = None,
    ) -> None:
        self.kind = kind
        self.handler = handler
        self.workers = workers
        self.on_permanent = on_permanent
        self.backoff = backoff or _Backoff()
        self._queue: asyncio.Queue[Hashable] = asyncio.Queue()
        self._queued: set[Hashable] = set()
        self._active: set[Hashable] = set()
        self._dirty: set[Hashable] = set()
        self._failures: dict[Hashable, int] = {}
        self._timers: dict[Hashable, asyncio.TimerHandle] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._idle = asyncio.Event()
        self._idle.set()
        self._depth = metrics.QUEUE_DEPTH.labels(kind=kind)

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._worker(), name=f"{self.kind}-worker-{i}")
                for i in range(self.workers)
            ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        # Keys cut off mid-run stay wanted: the next start() runs them again.
        for key in list(self._active):
            self._active.discard(key)
            self.add(key)
        for key, timer in list(self._timers.items()):
            timer.cancel()
            self._timers.pop(key, None)
            self.add(key)

    @property
    def running(self) -> bool:
        """Whether workers are started (only the leader runs them)."""
        return bool(self._tasks)

    def __len__(self) -> int:
        return len(self._queued) + len(self._active) + len(self._timers)

    def add(self, key: Hashable) -> None:
        """Mark `key` for reconciling (now, or after its current run)."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        if key in self._active:
            self._dirty.add(key)
            return
        if key in self._queued:
            return
        self._queued.add(key)
        self._idle.clear()
        self._queue.put_nowait(key)
        self._depth.set(len(self))

    def add_after(self, key: Hashable, delay: float) -> None:
        if key in self._queued or key in self._timers:
            return
        self._idle.clear()
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(delay, self._fire, key)

    def forget(self, key: Hashable) -> None:
        """Reset `key`'s failure count (it succeeded or changed)."""
        self._failures.pop(key, None)

    def failures(self, key: Hashable) -> int:
        """How often `key` failed in a row (0: its last run succeeded)."""
        return self._failures.get(key, 0)

    def _fire(self, key: Hashable) -> None:
        self._timers.pop(key, None)
        self.add(key)

    async def wait_idle(self) -> None:
        """Until nothing is queued, running or waiting for a retry."""
        await self._idle.wait()

    def _maybe_idle(self) -> None:
        if not self._queued and not self._active and not self._timers:
            self._idle.set()

    async def _worker(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            self._active.add(key)
            started = time.perf_counter()
            outcome = "ok"
            try:
                await self.handler(key)
                self.forget(key)
            except asyncio.CancelledError:
                # Stopped mid-run: the key stays in _active so stop() requeues it.
                raise
            except Exception as exc:
                outcome = await self._failed(key, exc)
            self._active.discard(key)
            metrics.RECONCILE_SECONDS.labels(kind=self.kind, outcome=outcome).observe(
                time.perf_counter() - started
            )
            if key in self._dirty:
                self._dirty.discard(key)
                self.add(key)
            self._depth.set(len(self))
            self._maybe_idle()

    async def _failed(self, key: Hashable, exc: BaseException) -> str:
        if is_retryable(exc):
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            delay = getattr(exc, "delay", None) or getattr(exc, "retry_after", None)
            delay = delay or self.backoff.delay(failures)
            level = log.warning if not isinstance(exc, Retry | KovnError) else log.info
            level(
                "reconcile will retry",
                kind=self.kind,
                key=str(key),
                error=str(exc),
                error_type=type(exc).__name__,
                delay=round(delay, 3),
                exc_info=not isinstance(exc, Retry | KovnError),
            )
            self._dirty.discard(key)
            self.add_after(key, delay)
            return "retry"
        self.forget(key)
        log.info("reconcile failed permanently", kind=self.kind, key=str(key), error=str(exc))
        if self.on_permanent is not None:
            try:
                await self.on_permanent(key, exc)
            except Exception as report_exc:
                log.warning("permanent-failure handler failed", error=str(report_exc))
        return "error"
