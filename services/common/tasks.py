"""Ending background tasks the same way everywhere.

Every long-lived component (informers, the NB writer, servers, leader work)
owns asyncio tasks that must end on stop: cancelled, then awaited so that
their `finally` blocks run before the component says it has stopped. A task
that had already failed must not make `stop()` raise, or one broken piece
would keep the others from shutting down.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

log = structlog.get_logger(__name__)


async def cancel_and_wait(task: asyncio.Task[object] | asyncio.Future[object] | None) -> None:
    """Cancel `task` and wait until it has ended; its own failure is logged, not raised."""
    if task is None:
        return
    if not task.done():
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        try:
            await task
        except Exception as exc:  # its failure must not stop the caller's shutdown
            log.warning("background task had failed", task=_name(task), error=str(exc))


def _name(task: asyncio.Future[object]) -> str:
    return task.get_name() if isinstance(task, asyncio.Task) else repr(task)
