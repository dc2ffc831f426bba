"""One thread owns the SQLite connection and runs what is queued in group commits.

sqlite3 connections are not for sharing between threads, and a commit per
allocation would make SQLite's write lock and journal the limit. A single
writer thread therefore drains whatever requests are queued and runs them
as one transaction (a group commit); nearly every operation succeeds, and
if one refuses the batch is replayed with a savepoint per operation so that
one refused allocation does not undo its neighbours. WAL with
synchronous=NORMAL makes a committed transaction survive a crash of the
process (kill -9), which is the failure that matters for an allocation
acknowledged to a client; it costs no fsync per commit. Results go back to
the event loop's futures; a database failure reaches a caller as
Unavailable.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

from services.common.errors import Unavailable

_BATCH = 512

Op = Callable[[sqlite3.Connection], Any]


class Writer(threading.Thread):
    """Owns the connection; runs queued operations in group commits."""

    def __init__(self, path: str, schema: str) -> None:
        super().__init__(name="ipam-sqlite", daemon=True)
        self.path = path
        self.schema = schema
        self.queue: queue.SimpleQueue[tuple[Op, asyncio.Future[Any]] | None] = queue.SimpleQueue()
        self.ready = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=OFF")
            conn.executescript(self.schema)
        except BaseException as err:  # reported to open()
            self.error = err
            self.ready.set()
            return
        self.ready.set()
        stop = False
        while not stop:
            first = self.queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < _BATCH:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._run_batch(conn, batch)
        conn.close()

    @staticmethod
    def _run_batch(conn: sqlite3.Connection, batch: list[tuple[Op, asyncio.Future[Any]]]) -> None:
        results: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        # Optimistically the whole batch at once (nearly every operation
        # succeeds); if one refuses, undo and replay the batch with a
        # savepoint per operation so the others still commit.
        try:
            conn.execute("BEGIN IMMEDIATE")
            results = [(fut, op(conn), None) for op, fut in batch]
            conn.execute("COMMIT")
        except Exception:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            results = Writer._run_each(conn, batch)
        if results:
            loop = results[0][0].get_loop()
            loop.call_soon_threadsafe(_resolve, results)

    @staticmethod
    def _run_each(
        conn: sqlite3.Connection, batch: list[tuple[Op, asyncio.Future[Any]]]
    ) -> list[tuple[asyncio.Future[Any], Any, BaseException | None]]:
        results: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op, fut in batch:
                conn.execute("SAVEPOINT op")
                try:
                    value = op(conn)
                except Exception as err:
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    results.append((fut, None, _typed(err)))
                else:
                    conn.execute("RELEASE op")
                    results.append((fut, value, None))
            conn.execute("COMMIT")
        except sqlite3.Error as err:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            failure = Unavailable(f"sqlite store: {err}")
            results = [(fut, None, failure) for _, fut in batch]
        return results


def _typed(err: Exception) -> Exception:
    """What the caller of one operation hears: the database failing is Unavailable."""
    if isinstance(err, sqlite3.Error):
        return Unavailable(f"sqlite store: {err}")
    return err


def _resolve(results: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for fut, value, err in results:
        if fut.done():
            continue
        if err is not None:
            fut.set_exception(err)
        else:
            fut.set_result(value)
