"""services.common.ovsdb against a real ovsdb-server: transactions, reads,
waiting on row notifications, failures."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox import daemon
from services.common.ovsdb import Ovsdb, OvsdbError

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
TABLES: dict[str, list[str] | None] = {
    "Open_vSwitch": None,
    "Bridge": ["name", "external_ids", "ports"],
}


def _start_server(tmp: Path) -> str:
    remote = f"unix:{tmp / 'db.sock'}"
    args = [str(tmp / "conf.db"), f"--remote=p{remote}"]
    daemon.start("ovsdb-server", args, run_dir=tmp, name="ovsdb-server")
    return remote


@pytest.fixture
def server_dir() -> Iterator[Path]:
    tmp = Path(tempfile.mkdtemp(prefix="kdp-db-"))
    subprocess.run(["ovsdb-tool", "create", str(tmp / "conf.db"), SCHEMA], check=True)
    try:
        yield tmp
    finally:
        daemon.stop(tmp / "ovsdb-server.pid", "ovsdb-server")
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def server(server_dir: Path) -> str:
    remote = _start_server(server_dir)
    subprocess.run(["ovs-vsctl", f"--db={remote}", "--no-wait", "init"], check=True)
    return remote


@pytest.fixture
async def db(server: str) -> AsyncIterator[Ovsdb]:
    conn = await Ovsdb.connect(server, "Open_vSwitch", TABLES, timeout=5)
    yield conn
    await conn.close()


def _add_bridge(name: str) -> Any:
    def fn(txn: Any, tables: Any) -> str:
        br = txn.insert(tables["Bridge"])
        br.name = name
        root = next(iter(tables["Open_vSwitch"].rows.values()))
        root.addvalue("bridges", br.uuid)
        return name

    return fn


def _names(tables: Any) -> set[str]:
    return {row.name for row in tables["Bridge"].rows.values()}


async def test_transact_and_read(db: Ovsdb) -> None:
    assert await db.transact(_add_bridge("kdpbr-a")) == "kdpbr-a"
    assert "kdpbr-a" in await db.read(_names)
    # Many at once: they are serialized in the IDL thread and all commit.
    await asyncio.gather(*(db.transact(_add_bridge(f"kdpbr-{i}")) for i in range(30)))
    assert {f"kdpbr-{i}" for i in range(30)} <= await db.read(_names)


async def test_batched_transactions_fail_alone(db: Ovsdb) -> None:
    await db.transact(_add_bridge("kdpbr-taken"))
    names = [f"kdpbr-b{i}" for i in range(20)]
    calls = [db.transact(_add_bridge(n), batch=True) for n in names[:10]]
    calls.append(db.transact(_add_bridge("kdpbr-taken"), batch=True))  # constraint violation
    calls += [db.transact(_add_bridge(n), batch=True) for n in names[10:]]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(results[10], OvsdbError) and "constraint" in str(results[10])
    assert [r for i, r in enumerate(results) if i != 10] == names
    assert set(names) <= await db.read(_names)


async def test_failures_are_errors_and_change_nothing(db: Ovsdb) -> None:
    await db.transact(_add_bridge("kdpbr-dup"))
    with pytest.raises(OvsdbError, match="constraint violation"):
        await db.transact(_add_bridge("kdpbr-dup"))

    def boom(txn: Any, tables: Any) -> None:
        _add_bridge("kdpbr-never")(txn, tables)
        raise ValueError("changed my mind")

    with pytest.raises(ValueError, match="changed my mind"):
        await db.transact(boom)
    assert "kdpbr-never" not in await db.read(_names)
    assert db.connected


async def test_wait_for_resolves_on_notification(db: Ovsdb, server: str) -> None:
    await db.transact(_add_bridge("kdpbr-w"))

    def marked(row: Any) -> str | None:
        return row.external_ids.get("mark") if row.name == "kdpbr-w" else None

    # Registration checks the replica first, so a change landing before the
    # waiter is registered is not missed either.
    waiter = asyncio.create_task(db.wait_for("Bridge", marked, timeout=10))
    await asyncio.to_thread(
        subprocess.run,
        ["ovs-vsctl", f"--db={server}", "--no-wait", "br-set-external-id", "kdpbr-w", "mark", "42"],
        check=True,
    )
    assert await waiter == "42"
    # Already true: resolves at once from the replica.
    assert await db.wait_for("Bridge", marked, timeout=1) == "42"
    with pytest.raises(TimeoutError):
        await db.wait_for("Bridge", lambda row: row.name == "kdpbr-nothing", timeout=0.2)


async def test_watch_sees_changes(db: Ovsdb) -> None:
    seen: list[tuple[str, str]] = []
    unwatch = db.watch("Bridge", lambda event, row, old: seen.append((event, row.name)))
    await db.transact(_add_bridge("kdpbr-seen"))
    unwatch()
    await db.transact(_add_bridge("kdpbr-unseen"))
    assert ("create", "kdpbr-seen") in seen
    assert all(name != "kdpbr-unseen" for _, name in seen)


async def test_connect_to_nothing_fails_fast(tmp_path: Path) -> None:
    with pytest.raises(OvsdbError, match="cannot connect"):
        await Ovsdb.connect(f"unix:{tmp_path / 'none.sock'}", "Open_vSwitch", TABLES, timeout=2)


async def test_survives_a_server_restart(db: Ovsdb, server_dir: Path) -> None:
    await db.transact(_add_bridge("kdpbr-before"))
    daemon.stop(server_dir / "ovsdb-server.pid", "ovsdb-server")
    _start_server(server_dir)
    # The IDL reconnects on its own; a transaction issued meanwhile is retried.
    await db.transact(_add_bridge("kdpbr-after"), timeout=20)
    assert {"kdpbr-before", "kdpbr-after"} <= await db.read(_names)
    assert db.connected
