"""One NB writer for the whole controller, batching many requests per txn.

OVN's NB favours few large transactions over many small ones, and the IDL
commits one transaction at a time anyway. Every reconciler submits its rows
here and awaits the result; whatever accumulated while the previous
transaction was in flight goes into the next one. A batch that fails is
retried request by request, so one bad request cannot fail its neighbours.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import structlog

from services.common.tasks import cancel_and_wait
from services.controller import metrics
from services.controller.nb.client import NbClient
from services.controller.nb.rows import DesiredRow, OwnedRow

log = structlog.get_logger(__name__)


@dataclass
class _Request:
    ensure: list[DesiredRow]
    remove: list[OwnedRow]
    force: bool
    done: asyncio.Future[int] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def size(self) -> int:
        return len(self.ensure) + len(self.remove)


class NbWriter:
    """Batches submitted row changes into few NB transactions."""

    def __init__(self, client: NbClient, *, max_rows: int = 5000) -> None:
        self.client = client
        self.max_rows = max_rows
        self._pending: asyncio.Queue[_Request] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        #: Rows actually changed since start (for "a restart writes nothing").
        self.rows_written = 0
        self.transactions = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="nb-writer")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        while not self._pending.empty():
            req = self._pending.get_nowait()
            if not req.done.done():
                req.done.set_exception(RuntimeError("NB writer stopped"))

    async def write(
        self,
        ensure: list[DesiredRow] | None = None,
        remove: list[OwnedRow] | None = None,
        *,
        force: bool = False,
    ) -> int:
        """Write the rows; returns how many rows actually changed.

        `force`: rewrite ensured rows even if their hash stamp matches (the
        caller compared real content and found drift).
        """
        req = _Request(list(ensure or ()), list(remove or ()), force)
        if not req.size():
            return 0
        self.start()
        await self._pending.put(req)
        return await req.done

    async def _run(self) -> None:
        while True:
            batch = [await self._pending.get()]
            rows = batch[0].size()
            while rows < self.max_rows and not self._pending.empty():
                req = self._pending.get_nowait()
                batch.append(req)
                rows += req.size()
            await self._commit(batch)

    async def _commit(self, batch: list[_Request]) -> None:
        ensure = [r for req in batch for r in req.ensure]
        remove = [r for req in batch for r in req.remove]
        force: set[tuple[str, str]] = {
            (r.table, r.name) for req in batch if req.force for r in req.ensure
        }
        started = time.perf_counter()
        try:
            changed = await self.client.apply(ensure, remove, force=force)
        except Exception as exc:
            if len(batch) == 1:
                log.warning("nb transaction failed", error=str(exc), rows=batch[0].size())
                if not batch[0].done.done():
                    batch[0].done.set_exception(exc)
                return
            for req in batch:
                await self._commit([req])
            return
        finally:
            metrics.NB_TXN_SECONDS.observe(time.perf_counter() - started)
            metrics.NB_TXN_ROWS.observe(len(ensure) + len(remove))
        self.transactions += 1
        self.rows_written += changed
        metrics.NB_ROWS_WRITTEN.inc(changed)
        # Each request learns the batch's total; callers only use it as a
        # "something was written" signal and for counting.
        for req in batch:
            if not req.done.done():
                req.done.set_result(changed)
