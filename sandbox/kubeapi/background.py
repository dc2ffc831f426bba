"""Work the server starts beside the requests it answers, and waits for.

The controllers run this way (woken by committed events), and so does the
tail of a CRD's deletion (ending its watches once their last events are
out). One shared set lets the server settle all of it after bootstrap and
before it stops, whoever started the task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


class Background:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        """Wait until the work already started (and what it starts) is done."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
