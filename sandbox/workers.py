"""A fixed set of pre-started threads for blocking work of the node agents.

In a pod burst the agents spawn hundreds of CNI plugins and create and
remove hundreds of network namespaces. Done on the event loop, each spawn
stalls it while the child waits for a CPU to exec; done on threads started
on demand, the loop waits for each new thread to be scheduled. These
threads are started once, up front, and take jobs from a queue; results
come back to the loop as futures.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class ThreadPoisoned(Exception):
    """Raised by a job that left its thread unusable (e.g. in a foreign netns).

    The thread reports the error and exits instead of taking more jobs.
    """


class Workers:
    def __init__(self, size: int, name: str) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], asyncio.Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(size)
        ]
        for t in self._threads:
            t.start()

    def run(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """Run fn on a worker thread; await the returned future on the loop."""
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._jobs.put((fn, fut))
        return fut

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, fut = job
            loop = fut.get_loop()
            try:
                result = fn()
            except ThreadPoisoned as e:
                loop.call_soon_threadsafe(_settle, fut, None, e)
                return
            except BaseException as e:
                loop.call_soon_threadsafe(_settle, fut, None, e)
            else:
                loop.call_soon_threadsafe(_settle, fut, result, None)

    def close(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)


def _settle(fut: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if fut.done():
        return  # the awaiting task was cancelled
    if exc is None:
        fut.set_result(result)
    else:
        fut.set_exception(exc)


# Two pools, so quick jobs (a file write, a netns) never queue behind plugin
# runs, which may block for seconds each (kovn-cni waits for the dataplane).
POOL_SIZES = {"plugins": 256, "io": 16}
_pools: dict[str, Workers] = {}


def pool(kind: str = "io") -> Workers:
    """The process-wide pool of that kind ("io" or "plugins"), started on first use."""
    if kind not in _pools:
        if kind not in POOL_SIZES:
            raise ValueError(f"unknown worker pool {kind!r}: one of {sorted(POOL_SIZES)}")
        _pools[kind] = Workers(POOL_SIZES[kind], f"sbx-{kind}")
    return _pools[kind]


def start_all() -> None:
    for kind in POOL_SIZES:
        pool(kind)
