"""This replica's in-memory view of the store, and how it follows the store.

The allocator only guesses well if its memory matches the store: it is
built from a full read at start, then kept in step with what other replicas
write (the store's watch reports it) and re-read when subnets change under
it. Both halves of the core, subnet administration and allocations, act on
this one view; it lives here so that neither half owns it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from services.common.logging import get_logger
from services.ipam import metrics
from services.ipam.allocator import Allocator
from services.ipam.model import AllocationRecord, Cooling, PoolSpec, Snapshot
from services.ipam.ordering import Gate, OwnerLocks
from services.ipam.store.base import Changes, Store

log = get_logger(__name__)


def now_ms() -> int:
    return int(time.time() * 1000)


class StoreView(Changes):
    def __init__(
        self,
        store: Store,
        *,
        cooldown_seconds: float,
        spread: bool = False,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.store = store
        self.now_ms = clock  # wall clock in ms; tests pass their own to step time
        self.cooldown_ms = int(cooldown_seconds * 1000)
        self.alloc = Allocator(self.cooldown_ms, spread=spread)
        self._gate = Gate()
        self._owners = OwnerLocks()
        self._refresh: asyncio.Task[None] | None = None
        self._reloading: asyncio.Task[None] | None = None
        self._latency = metrics.ALLOCATE_SECONDS.labels(store.kind)
        metrics.track(self)

    async def start(self) -> None:
        await self.store.purge_cooling(self.now_ms())
        self.rebuild(await self.store.load())
        await self.store.watch(self)

    def rebuild(self, snap: Snapshot) -> None:
        alloc = Allocator(self.cooldown_ms, spread=self.alloc.spread)
        pools = _pools_by_subnet(snap)
        for spec in snap.subnets:
            alloc.install(alloc.build(spec, pools.get(spec.name, [])))
        for rec in snap.allocations:
            alloc.commit(rec)
        alloc.resume_cursors()
        self._apply_cooling(alloc, snap)
        self.alloc = alloc
        log.info(
            "ipam state loaded",
            store=self.store.kind,
            subnets=len(snap.subnets),
            allocations=len(snap.allocations),
            cooling=len(snap.cooling),
        )

    # ---- changes made by other replicas (etcd) -------------------------------

    def knows(self, owner_key: str, revision: int) -> bool:
        # A call of ours for this owner is in flight: it settles memory itself.
        if owner_key in self._owners:
            return True
        rec = self.alloc.owners.get(owner_key)
        return rec is not None and rec.revision == revision

    def allocation_put(self, rec: AllocationRecord) -> None:
        if rec.owner.key not in self._owners:
            self.alloc.commit(rec)

    def allocation_deleted(self, owner_key: str) -> None:
        rec = self.alloc.owners.get(owner_key)
        if rec is not None and owner_key not in self._owners:
            # Released by another replica. Its cool-down record travels on
            # another watcher and may come later (or already have been
            # skipped): cool the addresses from now until it says exactly.
            self.alloc.forget(rec, cool=True, now_ms=self.now_ms())

    def cooling_put(self, cooling: Cooling) -> None:
        self.alloc.apply_cooling(cooling)

    def subnets_changed(self) -> None:
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.get_running_loop().create_task(self._refresh_subnets())

    # ---- re-reading subnets ----------------------------------------------------

    async def refresh_subnets(self) -> None:
        """Re-read subnets and pools now (one refresh at a time)."""
        self.subnets_changed()
        assert self._refresh is not None
        await asyncio.shield(self._refresh)

    async def _refresh_subnets(self) -> None:
        # Read inside the gate: a snapshot taken before one of our own subnet
        # changes must not be applied after it.
        async with self._gate.exclusive():
            self._apply_subnets(await self.store.load())

    async def _reload(self) -> None:
        """Re-read subnets for allocations in flight (no gate: they hold it shared).

        Many allocations can lose against the same subnet change at once;
        they share one read instead of each loading the store.
        """
        if self._reloading is None or self._reloading.done():

            async def reload() -> None:
                self._apply_subnets(await self.store.load())

            self._reloading = asyncio.get_running_loop().create_task(reload())
        await asyncio.shield(self._reloading)

    def _apply_subnets(self, snap: Snapshot) -> None:
        pools = _pools_by_subnet(snap)
        names = {s.name for s in snap.subnets}
        for name in list(self.alloc.subnets):
            if name not in names:
                self.alloc.remove_subnet(name)
        for spec in snap.subnets:
            current = self.alloc.subnets.get(spec.name)
            if (
                current is None
                or current.spec.revision != spec.revision
                or set(current.pools) != {p.name for p in pools.get(spec.name, [])}
            ):
                self.alloc.install(self.alloc.build(spec, pools.get(spec.name, [])))
        for rec in snap.allocations:
            if rec.owner.key not in self.alloc.owners:
                self.alloc.commit(rec)
        self._apply_cooling(self.alloc, snap)

    def _apply_cooling(self, alloc: Allocator, snap: Snapshot) -> None:
        now = self.now_ms()
        for c in snap.cooling:
            if c.until_ms > now:
                alloc.apply_cooling(c)


def _pools_by_subnet(snap: Snapshot) -> dict[str, list[PoolSpec]]:
    pools: dict[str, list[PoolSpec]] = {}
    for pool in snap.pools:
        pools.setdefault(pool.subnet, []).append(pool)
    return pools
