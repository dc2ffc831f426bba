"""An asyncio bridge over the OVS Python IDL.

The IDL is synchronous and keeps an in-memory replica of the tables it
monitors; driving it from asyncio code needs one thread that owns it. This
module runs that thread and offers three things to coroutines:

- `transact(fn)`: run `fn(txn, tables)` in the IDL thread, commit, retry on
  TRY_AGAIN, and return fn's value;
- `read(fn)`: run `fn(tables)` against the replica in the IDL thread (a
  consistent view, no copy of the world);
- `wait_for(table, match)`: a future resolved by the IDL's row
  notifications the moment a row matches (checked against existing rows
  first, so there is no race with a change that already landed) — the way to
  wait for e.g. `ovn-installed` without polling.

This is kovn's one OVSDB stack: the dataplane's local Open_vSwitch database
and the controller's OVN Northbound both go through it. ovsdbapp is not used
because its connection is a class-level singleton per schema (a process here
may talk to several OVSDB servers), its thread yields the GIL after every row
update (for eventlet), and kovn needs awaitable waits on row changes, which
it does not offer. `indexes` adds lookups by a column (e.g. `name`) that
stay current as the replica changes, so finding a row by name costs the
same with ten rows or ten thousand.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import queue
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import ovs.db.idl
import ovs.jsonrpc
import ovs.poller
import ovs.stream
import structlog

from services.common.errors import Unavailable

log = structlog.get_logger(__name__)

T = TypeVar("T")
Tables = Mapping[str, Any]
Match = Callable[[Any], Any]

ROW_CREATE = "create"
ROW_UPDATE = "update"
ROW_DELETE = "delete"


class OvsdbError(Unavailable):
    """A transaction failed or the server could not be reached.

    Retryable as a class: the server may come back, and a transaction that
    lost to a concurrent one is tried again by the caller. Constraint
    violations are still bugs of the caller's and show up in the message."""


def fetch_schema(remote: str, database: str, timeout: float) -> dict[str, Any]:
    """The JSON schema of `database` at `remote` (blocking)."""
    error, stream = ovs.stream.Stream.open_block(
        ovs.stream.Stream.open(remote), int(timeout * 1000)
    )
    if error or stream is None:
        raise OvsdbError(f"cannot connect to {remote}: {os.strerror(error) if error else '?'}")
    rpc = ovs.jsonrpc.Connection(stream)
    try:
        error, reply = rpc.transact_block(
            ovs.jsonrpc.Message.create_request("get_schema", [database])
        )
    finally:
        rpc.close()
    if error or reply is None or reply.error:
        why = os.strerror(error) if error else (reply.error if reply else "no reply")
        raise OvsdbError(f"get_schema {database} from {remote} failed: {why}")
    result: dict[str, Any] = reply.result
    return result


class _Idl(ovs.db.idl.Idl):  # type: ignore[misc]
    def __init__(self, remote: str, helper: Any, bridge: Ovsdb) -> None:
        super().__init__(remote, helper)
        self._bridge = bridge

    def notify(self, event: str, row: Any, updates: Any = None) -> None:
        self._bridge._notify(event, row, updates)


@dataclass
class _Waiter:
    table: str
    match: Match
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


@dataclass
class _Call:
    kind: str  # "read", "txn", "wait"
    fn: Callable[..., Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    attempts: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _resolve(call_loop: asyncio.AbstractEventLoop, fut: asyncio.Future[Any], value: Any) -> None:
    def done() -> None:
        if not fut.done():
            fut.set_result(value)

    call_loop.call_soon_threadsafe(done)


def _reject(
    call_loop: asyncio.AbstractEventLoop, fut: asyncio.Future[Any], exc: BaseException
) -> None:
    def done() -> None:
        if not fut.done():
            fut.set_exception(exc)

    call_loop.call_soon_threadsafe(done)


class Ovsdb:
    """One OVSDB connection, its IDL thread and its replica."""

    MAX_ATTEMPTS = 20
    MAX_BATCH = 64

    def __init__(
        self,
        remote: str,
        database: str,
        tables: Mapping[str, Iterable[str] | None],
        indexes: Mapping[str, str] | None = None,
    ) -> None:
        self.remote = remote
        self.database = database
        self._tables = dict(tables)
        #: table -> column indexed by that column's name (see `lookup`).
        self._indexes = dict(indexes or {})
        self._idl: _Idl | None = None
        self._calls: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        self._waiters: list[_Waiter] = []
        self._watchers: dict[str, list[Callable[[str, Any, Any], None]]] = {}
        self._txn: ovs.db.idl.Transaction | None = None
        self._txn_calls: list[_Call] = []
        self._pending: collections.deque[_Call] = collections.deque()
        self._retry_seqno: int | None = None  # a TRY_AGAIN waits for a newer replica
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._synced = threading.Event()

    @classmethod
    async def connect(
        cls,
        remote: str,
        database: str,
        tables: Mapping[str, Iterable[str] | None],
        *,
        indexes: Mapping[str, str] | None = None,
        timeout: float = 10.0,
    ) -> Ovsdb:
        """Connect, fetch the schema, and wait until the replica is filled."""
        db = cls(remote, database, tables, indexes)
        try:
            await asyncio.wait_for(asyncio.to_thread(db._start, timeout), timeout)
        except TimeoutError:
            db._shutdown()
            raise OvsdbError(f"no answer from OVSDB at {remote} within {timeout:g}s") from None
        except BaseException:
            db._shutdown()
            raise
        return db

    def _start(self, timeout: float) -> None:
        schema = fetch_schema(self.remote, self.database, timeout)
        helper = ovs.db.idl.SchemaHelper(schema_json=schema)
        for table, columns in self._tables.items():
            if columns is None:
                helper.register_table(table)
            else:
                helper.register_columns(table, list(columns))
        self._idl = _Idl(self.remote, helper, self)
        for table, column in self._indexes.items():
            self._idl.index_create(table, column).add_column(column)
        self._thread = threading.Thread(
            target=self._run, name=f"ovsdb-{self.database}", daemon=True
        )
        self._thread.start()
        if not self._synced.wait(timeout):
            raise OvsdbError(f"OVSDB at {self.remote} did not send its tables within {timeout:g}s")

    @property
    def connected(self) -> bool:
        idl = self._idl
        return bool(idl is not None and idl._session.is_connected() and self._synced.is_set())

    async def close(self) -> None:
        await asyncio.to_thread(self._shutdown)

    def _shutdown(self) -> None:
        self._stopping = True
        self._wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        if self._idl is not None:
            self._idl.close()
            self._idl = None
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._wake_r = self._wake_w = -1

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    @staticmethod
    def lookup(tables: Tables, table: str, column: str, value: Any) -> Any:
        """The row of `table` whose indexed `column` equals `value`, or None.

        For use inside `read`/`transact` functions, on a column passed in
        `indexes` at connect."""
        rows = tables[table].rows
        entry = rows.IndexEntry(**{column: value})
        return next(iter(rows.indexes[column].irange(entry, entry)), None)

    # -- coroutine API -----------------------------------------------------

    async def _submit(
        self, kind: str, fn: Callable[..., Any], timeout: float | None, **extra: Any
    ) -> Any:
        if self._stopping:
            raise OvsdbError(f"OVSDB connection to {self.remote} is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._calls.put(_Call(kind, fn, future, loop, extra=extra))
        self._wake()
        if timeout is None:
            return await future
        return await asyncio.wait_for(future, timeout)

    async def transact(
        self, fn: Callable[[Any, Tables], T], *, timeout: float = 10.0, batch: bool = False
    ) -> T:
        """Run fn(txn, tables) in the IDL thread and commit it.

        With batch, fn may share one OVSDB transaction with other batchable
        calls queued at the same moment (group commit). It must then change
        shared rows only by mutation (addvalue/delvalue/setkey of its own
        keys), and be safe to run again: if the shared transaction fails,
        every call is retried alone, so one bad call fails only itself.
        """
        try:
            result: T = await self._submit("txn", fn, timeout, batch=batch)
        except TimeoutError:
            raise OvsdbError(
                f"transaction on {self.remote} took longer than {timeout:g}s"
            ) from None
        return result

    async def read(self, fn: Callable[[Tables], T], *, timeout: float = 10.0) -> T:
        """Run fn(tables) against the replica in the IDL thread."""
        result: T = await self._submit("read", fn, timeout)
        return result

    async def wait_for(self, table: str, match: Match, *, timeout: float) -> Any:
        """Wait until match(row) is truthy for a row of `table`; returns that value.

        Raises TimeoutError when no row matched within `timeout`.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._calls.put(_Call("wait", match, future, loop, extra={"table": table}))
        self._wake()
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            if not future.done():
                future.cancel()

    def watch(self, table: str, callback: Callable[[str, Any, Any], None]) -> Callable[[], None]:
        """Call callback(event, row, old) in the IDL thread for every change to
        `table`. It must be quick and must not block. Returns an unwatch function.
        """
        self._watchers.setdefault(table, []).append(callback)

        def unwatch() -> None:
            callbacks = self._watchers.get(table, [])
            if callback in callbacks:
                callbacks.remove(callback)

        return unwatch

    # -- IDL thread --------------------------------------------------------

    def _notify(self, event: str, row: Any, updates: Any) -> None:
        table = row._table.name
        for callback in list(self._watchers.get(table, ())):
            try:
                callback(event, row, updates)
            except Exception:
                log.exception("ovsdb_watch_callback_failed", table=table)
        if event == ROW_DELETE or not self._waiters:
            return
        keep = []
        for waiter in self._waiters:
            if waiter.future.done():
                continue
            if waiter.table == table:
                value = self._try_match(waiter, row)
                if value:
                    _resolve(waiter.loop, waiter.future, value)
                    continue
            keep.append(waiter)
        self._waiters = keep

    @staticmethod
    def _try_match(waiter: _Waiter, row: Any) -> Any:
        try:
            return waiter.match(row)
        except Exception as exc:
            _reject(waiter.loop, waiter.future, exc)
            return None

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as exc:
            log.exception("ovsdb_thread_failed", remote=self.remote)
            self._stopping = True
            self._fail_all(OvsdbError(f"OVSDB thread for {self.remote} failed: {exc!r}"))

    def _loop(self) -> None:
        idl = self._idl
        assert idl is not None
        while not self._stopping:
            idl.run()
            if not self._synced.is_set() and idl.has_ever_connected():
                self._synced.set()
            if self._synced.is_set():
                self._drain_calls(idl)
                self._progress_txn(idl)
            poller = ovs.poller.Poller()
            idl.wait(poller)
            poller.fd_wait(self._wake_r, ovs.poller.POLLIN)
            if self._txn is not None:
                self._txn.wait(poller)
            poller.block()
            try:
                while os.read(self._wake_r, 4096):
                    pass
            except (BlockingIOError, OSError):
                pass
        self._fail_all(OvsdbError(f"OVSDB connection to {self.remote} closed"))

    def _fail_all(self, exc: Exception) -> None:
        for call in self._txn_calls:
            _reject(call.loop, call.future, exc)
        self._txn_calls = []
        for call in self._pending:
            _reject(call.loop, call.future, exc)
        self._pending.clear()
        while True:
            try:
                call = self._calls.get_nowait()
            except queue.Empty:
                break
            _reject(call.loop, call.future, exc)
        for waiter in self._waiters:
            _reject(waiter.loop, waiter.future, exc)
        self._waiters = []

    def _drain_calls(self, idl: _Idl) -> None:
        while True:
            try:
                call = self._calls.get_nowait()
            except queue.Empty:
                break
            if call.future.done():
                continue
            if call.kind == "read":
                try:
                    _resolve(call.loop, call.future, call.fn(idl.tables))
                except Exception as exc:
                    _reject(call.loop, call.future, exc)
            elif call.kind == "wait":
                waiter = _Waiter(call.extra["table"], call.fn, call.future, call.loop)
                matched = None
                for row in idl.tables[waiter.table].rows.values():
                    matched = self._try_match(waiter, row)
                    if matched:
                        break
                if matched:
                    _resolve(call.loop, call.future, matched)
                elif not call.future.done():
                    self._waiters.append(waiter)
            else:
                self._pending.append(call)

    def _begin_txn(self, idl: _Idl) -> None:
        # The IDL allows one transaction at a time, and idl.run() must not
        # run while one is being built: build and first commit() together.
        if self._retry_seqno is not None:
            if idl.change_seqno == self._retry_seqno:
                return
            self._retry_seqno = None
        if not self._usable(idl):
            return  # (re)connecting: transactions wait for the resync
        while self._txn is None and self._pending:
            group = self._next_group()
            if not group:
                continue
            txn = ovs.db.idl.Transaction(idl)
            failed: tuple[_Call, Exception] | None = None
            for call in group:
                call.attempts += 1
                try:
                    call.extra["result"] = call.fn(txn, idl.tables)
                except Exception as exc:
                    failed = (call, exc)
                    break
            if failed is not None:
                txn.abort()
                txn.commit()
                if len(group) == 1:
                    _reject(failed[0].loop, failed[0].future, failed[1])
                else:
                    self._split(group)  # each gets its own answer
                continue
            self._txn, self._txn_calls = txn, group
            self._finish_txn(txn.commit())

    def _next_group(self) -> list[_Call]:
        """The next transaction's calls: one, or a run of batchable ones
        (group commit: many small independent changes, one round trip)."""
        first = self._pending.popleft()
        if first.future.done():
            return []
        group = [first]
        if first.extra.get("batch") and not first.extra.get("solo"):
            while self._pending and len(group) < self.MAX_BATCH:
                nxt = self._pending[0]
                if nxt.future.done():
                    self._pending.popleft()
                    continue
                if not nxt.extra.get("batch") or nxt.extra.get("solo"):
                    break
                group.append(self._pending.popleft())
        return group

    def _split(self, group: list[_Call]) -> None:
        """Run a failed group's calls one by one, so a failure is only its own."""
        for call in reversed(group):
            call.attempts -= 1
            call.extra["solo"] = True
            self._pending.appendleft(call)

    def _connected_now(self) -> bool:
        return self._idl is not None and self._usable(self._idl)

    @staticmethod
    def _usable(idl: _Idl) -> bool:
        return bool(idl._session.is_connected() and idl.state == idl.IDL_S_MONITORING)

    def _progress_txn(self, idl: _Idl) -> None:
        if self._txn is not None:
            self._finish_txn(self._txn.commit())
        self._begin_txn(idl)

    def _finish_txn(self, status: str) -> None:
        txn, calls = self._txn, self._txn_calls
        if txn is None or not calls or status == ovs.db.idl.Transaction.INCOMPLETE:
            return
        self._txn, self._txn_calls = None, []
        if status in (ovs.db.idl.Transaction.SUCCESS, ovs.db.idl.Transaction.UNCHANGED):
            for call in calls:
                _resolve(call.loop, call.future, call.extra.get("result"))
        elif status == ovs.db.idl.Transaction.TRY_AGAIN and (
            max(call.attempts for call in calls) < self.MAX_ATTEMPTS or not self._connected_now()
        ):
            for call in reversed(calls):
                if not self._connected_now():
                    call.attempts -= 1  # lost the connection: not the transaction's fault
                self._pending.appendleft(call)
            # Retry once the replica has changed (a conflicting update, or a
            # reconnect and resync): retrying sooner would only fail again.
            self._retry_seqno = self._idl.change_seqno if self._idl is not None else None
        elif len(calls) > 1:
            self._split(calls)
        else:
            error = txn.get_error() or status
            _reject(
                calls[0].loop,
                calls[0].future,
                OvsdbError(f"transaction on {self.remote} failed: {error}"),
            )
