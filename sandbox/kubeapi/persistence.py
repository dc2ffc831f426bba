"""The durable copy of the API's objects: SQLite in WAL mode, group commit.

The in-memory index answers every read; this file is what survives a
restart. Writes from concurrent requests are gathered into one transaction
(group commit) on a dedicated thread, so 32 clients creating pods cost one
commit per batch instead of one each, and a request is answered only after
its batch is committed. The last issued resourceVersion is stored with every
batch so versions keep increasing after a restart even if the newest object
was deleted.

Durability: WAL with synchronous=NORMAL, so an answered write survives the
process being killed (tested with SIGKILL); a power cut may lose the last
commits, which is the trade a one-machine sandbox can afford.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    key TEXT PRIMARY KEY,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""

Op = tuple[str, bytes | None]  # (key, serialized object or None to delete)


class Persistence:
    def __init__(self, path: Path, on_commit: Callable[[list[Any]], None]) -> None:
        self._path = path
        self._on_commit = on_commit
        self._pending_events: list[Any] = []
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kapi-sqlite")
        self._pending: dict[str, bytes | None] = {}
        self._pending_rv = 0
        self._batch: asyncio.Future[None] | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.failed: Exception | None = None

    def load(self) -> tuple[int, Iterator[tuple[str, bytes]]]:
        row = self._db.execute("SELECT value FROM meta WHERE name='rv'").fetchone()
        rv = int(row[0]) if row else 0
        cur = self._db.execute("SELECT key, data FROM objects")
        return rv, ((k, bytes(d)) for k, d in cur)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._flusher(), name="kapi-flusher")

    def write(self, ops: list[Op], rv: int, events: list[Any]) -> asyncio.Future[None]:
        """Queue ops for the next batch; the future resolves once committed.

        `events` are handed to on_commit, in order, right after the commit.
        """
        self._pending_events.extend(events)
        for key, data in ops:
            self._pending[key] = data
        self._pending_rv = max(self._pending_rv, rv)
        if self._batch is None:
            self._batch = asyncio.get_running_loop().create_future()
        self._wake.set()
        return self._batch

    async def _flusher(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._pending:
                if self._closed:
                    return
                continue
            ops, rv, fut = self._pending, self._pending_rv, self._batch
            events = self._pending_events
            self._pending, self._batch, self._pending_events = {}, None, []
            try:
                await loop.run_in_executor(self._pool, self._commit, ops, rv)
            except Exception as e:  # a failed commit must fail its requests
                # Memory is now ahead of disk: stop taking writes (fail-stop)
                # rather than build on changes the disk does not have; a
                # restart reloads the last committed state.
                log.error("sqlite commit failed; refusing further writes", error=str(e))
                self.failed = e
                if fut is not None and not fut.done():
                    fut.set_exception(e)
                continue
            try:
                self._on_commit(events)
            except Exception as e:
                log.exception("dispatching committed events failed", error=str(e))
            if fut is not None and not fut.done():
                fut.set_result(None)
            if self._pending or self._closed:
                self._wake.set()

    def _commit(self, ops: dict[str, bytes | None], rv: int) -> None:
        db = self._db
        db.execute("BEGIN")
        try:
            puts = [(k, d) for k, d in ops.items() if d is not None]
            dels = [(k,) for k, d in ops.items() if d is None]
            if puts:
                db.executemany("INSERT OR REPLACE INTO objects(key, data) VALUES (?, ?)", puts)
            if dels:
                db.executemany("DELETE FROM objects WHERE key = ?", dels)
            db.execute("INSERT OR REPLACE INTO meta(name, value) VALUES ('rv', ?)", (rv,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._task is not None:
            await self._task
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self._db.close)
        self._pool.shutdown(wait=True)
