"""SQLite store: the embedded default for a single ipam replica.

One replica needs no separate database server: an embedded file, written
by one thread in group commits (sqlite_writer.py), is durable and fast
enough.

Uniqueness is enforced by the schema (primary keys on owner and on
subnet+address, a unique MAC) so that even a bug in the allocator cannot
store an address twice.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from services.common.errors import AlreadyExists, NotFound, Unavailable
from services.ipam.model import AllocationRecord, Cooling, PoolSpec, Snapshot, SubnetSpec
from services.ipam.store.base import (
    AddressTaken,
    AllocationCheck,
    MacTaken,
    OwnerExists,
    Store,
)
from services.ipam.store.sqlite_writer import Writer

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS subnets(
    name TEXT PRIMARY KEY, spec TEXT NOT NULL, revision INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS pools(
    subnet TEXT NOT NULL, name TEXT NOT NULL, spec TEXT NOT NULL,
    PRIMARY KEY(subnet, name));
CREATE TABLE IF NOT EXISTS allocations(
    owner TEXT PRIMARY KEY, subnet TEXT NOT NULL, pool TEXT NOT NULL,
    mac TEXT NOT NULL UNIQUE, created_ms INTEGER NOT NULL, record TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS allocations_subnet ON allocations(subnet);
CREATE TABLE IF NOT EXISTS addresses(
    subnet TEXT NOT NULL, ip TEXT NOT NULL, owner TEXT NOT NULL,
    PRIMARY KEY(subnet, ip)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cooling(
    subnet TEXT NOT NULL, ip TEXT NOT NULL, until_ms INTEGER NOT NULL,
    previous_owner TEXT NOT NULL, PRIMARY KEY(subnet, ip)) WITHOUT ROWID;
"""


class SqliteStore(Store):
    kind = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        self._writer: Writer | None = None
        self._lock: int | None = None

    async def open(self) -> None:
        if self.path != ":memory:":
            try:
                Path(self.path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as err:
                raise Unavailable(f"cannot create the directory of {self.path!r}: {err}") from None
            self._lock = _exclusive(self.path + ".lock")
        self._writer = Writer(self.path, _SCHEMA)
        self._writer.start()
        await asyncio.to_thread(self._writer.ready.wait)
        if self._writer.error is not None:
            raise Unavailable(f"cannot open sqlite store {self.path!r}: {self._writer.error}")

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.queue.put(None)
            await asyncio.to_thread(self._writer.join)
            self._writer = None
        if self._lock is not None:
            os.close(self._lock)  # releases the flock
            self._lock = None

    def _submit(self, op: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        if self._writer is None:
            raise Unavailable("sqlite store is closed")
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._writer.queue.put((op, fut))
        return fut

    # ---- reads ---------------------------------------------------------------

    async def load(self) -> Snapshot:
        def op(conn: sqlite3.Connection) -> Snapshot:
            snap = Snapshot()
            for spec, rev in conn.execute("SELECT spec, revision FROM subnets"):
                snap.subnets.append(SubnetSpec.from_json(spec, rev))
            for (spec,) in conn.execute("SELECT spec FROM pools"):
                snap.pools.append(PoolSpec.from_json(spec))
            for (record,) in conn.execute("SELECT record FROM allocations"):
                snap.allocations.append(AllocationRecord.from_json(record))
            for subnet, ip, until, prev in conn.execute(
                "SELECT subnet, ip, until_ms, previous_owner FROM cooling"
            ):
                snap.cooling.append(Cooling(subnet, ip, until, prev))
            return snap

        return await self._submit(op)

    async def get_allocation(self, owner_key: str) -> AllocationRecord | None:
        def op(conn: sqlite3.Connection) -> AllocationRecord | None:
            return _get(conn, owner_key)

        return await self._submit(op)

    async def list_allocations(self, subnet: str = "") -> list[AllocationRecord]:
        def op(conn: sqlite3.Connection) -> list[AllocationRecord]:
            return _allocations(conn, subnet)

        return await self._submit(op)

    # ---- subnets and pools ---------------------------------------------------

    async def create_subnet(self, spec: SubnetSpec) -> int:
        def op(conn: sqlite3.Connection) -> int:
            try:
                conn.execute(
                    "INSERT INTO subnets(name, spec, revision) VALUES (?, ?, 1)",
                    (spec.name, spec.to_json()),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"subnet {spec.name!r} exists", field="subnet.name") from None
            return 1

        return await self._submit(op)

    async def update_subnet(self, spec: SubnetSpec, check: AllocationCheck) -> int:
        def op(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT revision FROM subnets WHERE name=?", (spec.name,)).fetchone()
            if row is None:
                raise NotFound(f"no subnet {spec.name!r}", field="subnet.name")
            check(_allocations(conn, spec.name))
            revision = int(row[0]) + 1
            conn.execute(
                "UPDATE subnets SET spec=?, revision=? WHERE name=?",
                (spec.to_json(), revision, spec.name),
            )
            return revision

        return await self._submit(op)

    async def delete_subnet(self, name: str, check: AllocationCheck) -> None:
        def op(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM subnets WHERE name=?", (name,)).fetchone() is None:
                raise NotFound(f"no subnet {name!r}", field="name")
            check(_allocations(conn, name))
            for table in ("pools", "cooling", "addresses"):
                conn.execute(f"DELETE FROM {table} WHERE subnet=?", (name,))
            conn.execute("DELETE FROM subnets WHERE name=?", (name,))

        await self._submit(op)

    async def create_pool(self, pool: PoolSpec) -> int:
        def op(conn: sqlite3.Connection) -> int:
            try:
                conn.execute(
                    "INSERT INTO pools(subnet, name, spec) VALUES (?, ?, ?)",
                    (pool.subnet, pool.name, pool.to_json()),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExists(
                    f"pool {pool.name!r} exists in subnet {pool.subnet!r}", field="pool.name"
                ) from None
            return _revision(conn, pool.subnet)

        return await self._submit(op)

    async def delete_pool(self, subnet: str, name: str, check: AllocationCheck) -> int:
        def op(conn: sqlite3.Connection) -> int:
            check([r for r in _allocations(conn, subnet) if r.pool == name])
            cur = conn.execute("DELETE FROM pools WHERE subnet=? AND name=?", (subnet, name))
            if cur.rowcount == 0:
                raise NotFound(f"no pool {name!r} in subnet {subnet!r}", field="name")
            return _revision(conn, subnet)

        return await self._submit(op)

    # ---- allocations ---------------------------------------------------------

    async def create_allocation(self, rec: AllocationRecord, subnet_revision: int) -> int:
        # subnet_revision is not compared: one replica, and the service lets
        # no allocation of a subnet be in flight while that subnet changes.
        def op(conn: sqlite3.Connection) -> int:
            subnet, key = rec.owner.network, rec.owner.key
            try:
                conn.execute(
                    "INSERT INTO allocations(owner, subnet, pool, mac, created_ms, record) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (key, subnet, rec.pool, rec.mac, rec.created_ms, rec.to_json()),
                )
            except sqlite3.IntegrityError:
                existing = _get(conn, key)
                if existing is not None:
                    raise OwnerExists(existing) from None
                row = conn.execute("SELECT owner FROM allocations WHERE mac=?", (rec.mac,))
                raise MacTaken(rec.mac, str(row.fetchone()[0])) from None
            for ip in rec.ips:
                try:
                    conn.execute(
                        "INSERT INTO addresses(subnet, ip, owner) VALUES (?, ?, ?)",
                        (subnet, ip, key),
                    )
                except sqlite3.IntegrityError:
                    row = conn.execute(
                        "SELECT owner FROM addresses WHERE subnet=? AND ip=?", (subnet, ip)
                    )
                    raise AddressTaken(ip, str(row.fetchone()[0])) from None
            # A cooling row of an address now held is ignored on load (the
            # address is used) and replaced on its next release: no delete
            # here, one statement less per allocation.
            return 0

        return await self._submit(op)

    async def release(self, rec: AllocationRecord, cooling: Sequence[Cooling]) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            key = rec.owner.key
            cur = conn.execute(
                "DELETE FROM allocations WHERE owner=? AND mac=? AND created_ms=?",
                (key, rec.mac, rec.created_ms),
            )
            if cur.rowcount == 0:
                return False
            for ip in rec.ips:
                conn.execute(
                    "DELETE FROM addresses WHERE subnet=? AND ip=? AND owner=?",
                    (rec.owner.network, ip, key),
                )
            conn.executemany(
                "INSERT OR REPLACE INTO cooling(subnet, ip, until_ms, previous_owner) "
                "VALUES (?, ?, ?, ?)",
                [(c.subnet, c.ip, c.until_ms, c.previous_owner) for c in cooling],
            )
            return True

        return await self._submit(op)

    async def purge_cooling(self, now_ms: int) -> int:
        """Drop cool-down rows that have expired (kept small, not needed for safety)."""

        def op(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM cooling WHERE until_ms <= ?", (now_ms,)).rowcount

        return await self._submit(op)


def _exclusive(path: str) -> int:
    """Hold an exclusive lock on `path` for as long as the process lives.

    The allocator's memory is the single replica's whole view: a second
    process on the same database would hand out addresses the first believes
    free (the schema would refuse the duplicates, but both would keep
    stumbling). The kernel drops the lock when the holder dies, even by
    kill -9, so a restart is never blocked by a dead predecessor.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise Unavailable(
            f"{path} is locked: another ipam process serves this SQLite store "
            "(SQLite is for one replica; use store=etcd for several)"
        ) from None
    return fd


def _revision(conn: sqlite3.Connection, subnet: str) -> int:
    row = conn.execute("SELECT revision FROM subnets WHERE name=?", (subnet,)).fetchone()
    return int(row[0]) if row else 0


def _get(conn: sqlite3.Connection, owner_key: str) -> AllocationRecord | None:
    row = conn.execute("SELECT record FROM allocations WHERE owner=?", (owner_key,)).fetchone()
    return AllocationRecord.from_json(row[0]) if row else None


def _allocations(conn: sqlite3.Connection, subnet: str) -> list[AllocationRecord]:
    if subnet:
        rows = conn.execute("SELECT record FROM allocations WHERE subnet=?", (subnet,))
    else:
        rows = conn.execute("SELECT record FROM allocations")
    return [AllocationRecord.from_json(r[0]) for r in rows]
