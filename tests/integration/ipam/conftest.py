"""Fixtures for ipam integration tests: a real etcd, and a core on either store."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from sandbox.testbed.ipam import EtcdServer
from services.ipam.core import IpamCore
from services.ipam.store.base import Store
from services.ipam.store.etcd import EtcdStore
from services.ipam.store.sqlite import SqliteStore


class Clock:
    """Milliseconds that only move when a test says so (cool-down tests)."""

    def __init__(self) -> None:
        self.ms = 1_700_000_000_000

    def __call__(self) -> int:
        return self.ms

    def advance(self, seconds: float) -> None:
        self.ms += int(seconds * 1000)


@pytest.fixture(scope="session")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    server = EtcdServer(tmp_path_factory.mktemp("ipm-etcd")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock()


class Stores:
    """Makes stores of one kind that share one place (a file or an etcd prefix)."""

    def __init__(self, kind: str, tmp_path: Path, etcd: EtcdServer | None) -> None:
        self.kind = kind
        self.path = str(tmp_path / "ipam.db")
        self.prefix = f"/ipm-test/{uuid.uuid4().hex}"
        self.etcd = etcd
        self.opened: list[Store] = []

    async def open(self) -> Store:
        store: Store
        if self.kind == "sqlite":
            store = SqliteStore(self.path)
        else:
            assert self.etcd is not None
            store = EtcdStore([self.etcd.endpoint], prefix=self.prefix)
        await store.open()
        self.opened.append(store)
        return store

    async def close_all(self) -> None:
        for store in self.opened:
            await store.close()
        self.opened.clear()


@pytest.fixture(params=["sqlite", "etcd"])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stores]:
    etcd = request.getfixturevalue("etcd") if request.param == "etcd" else None
    s = Stores(request.param, tmp_path, etcd)
    try:
        yield s
    finally:
        await s.close_all()


@pytest.fixture
async def etcd_stores(etcd: EtcdServer, tmp_path: Path) -> AsyncIterator[Stores]:
    """For what only a shared store has: several replicas, endpoints, batching."""
    s = Stores("etcd", tmp_path, etcd)
    try:
        yield s
    finally:
        await s.close_all()


@pytest.fixture
async def make_core(stores: Stores, clock: Clock) -> AsyncIterator[object]:
    async def make(cooldown: float = 30.0) -> IpamCore:
        core = IpamCore(
            await stores.open(), cooldown_seconds=cooldown, spread=stores.kind == "etcd",
            clock=clock,
        )  # fmt: skip
        await core.start()
        return core

    yield make


@pytest.fixture
async def core(make_core: object) -> IpamCore:
    return await make_core()  # type: ignore[operator, no-any-return]
