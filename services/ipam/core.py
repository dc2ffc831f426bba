"""The ipam service's behaviour, independent of gRPC: allocator + store.

The allocator guesses, the store decides. Every change goes to the store
first and reaches the in-memory allocator only once the store has accepted
it; a refusal from the store (another replica got there first) updates the
allocator and the choice is retried. Two rules keep one process coherent:
calls for the same owner are serialised (so a retried Allocate waits for the
first and returns its result), and a subnet or pool change waits until no
allocation is in flight and holds new ones back until it is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from typing import TypeVar

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from services.common.errors import (
    AlreadyExists,
    Conflict,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from services.common.logging import get_logger
from services.common.metrics import LATENCY_BUCKETS
from services.ipam import addresses as A
from services.ipam.allocator import FAMILY_NAME, Allocator, Usage, describe
from services.ipam.model import AllocationRecord, Cooling, Owner, PoolSpec, Snapshot, SubnetSpec
from services.ipam.store.base import (
    AddressCooling,
    AddressTaken,
    Changes,
    MacTaken,
    OwnerExists,
    Store,
    StoreRefusal,
    SubnetChanged,
)

log = get_logger(__name__)
T = TypeVar("T")

ALLOCATE_SECONDS = Histogram(
    "kovn_ipam_allocation_duration_seconds",
    "Time to allocate addresses for a new owner, store commit included.",
    ["store"],
    buckets=LATENCY_BUCKETS,
)
CONFLICTS = Counter(
    "kovn_ipam_allocation_conflicts_total",
    "Allocations retried because the store refused a stale choice.",
    ["store", "reason"],
)
RELEASED = Counter("kovn_ipam_releases_total", "Allocations released.", ["store", "cause"])

_RETRIES = 32
DEFAULT_PAGE = 500
MAX_PAGE = 5000


def now_ms() -> int:
    return int(time.time() * 1000)


class _Gate:
    """Many allocations at once, or one subnet/pool change alone."""

    def __init__(self) -> None:
        self.readers = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.open = asyncio.Event()
        self.open.set()
        self.writer = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        while not self.open.is_set():
            await self.open.wait()
        self.readers += 1
        self.idle.clear()
        try:
            yield
        finally:
            self.readers -= 1
            if self.readers == 0:
                self.idle.set()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        async with self.writer:
            self.open.clear()
            try:
                await self.idle.wait()
                yield
            finally:
                self.open.set()


class IpamCore(Changes):
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
        self._gate = _Gate()
        self._busy: dict[str, asyncio.Event] = {}
        self._refresh: asyncio.Task[None] | None = None
        self._reloading: asyncio.Task[None] | None = None
        self._latency = ALLOCATE_SECONDS.labels(store.kind)
        _CORES.add(self)

    async def start(self) -> None:
        await self.store.purge_cooling(self.now_ms())
        self.rebuild(await self.store.load())
        await self.store.watch(self)

    def rebuild(self, snap: Snapshot) -> None:
        alloc = Allocator(self.cooldown_ms, spread=self.alloc.spread)
        pools: dict[str, list[PoolSpec]] = {}
        for pool in snap.pools:
            pools.setdefault(pool.subnet, []).append(pool)
        for spec in snap.subnets:
            alloc.install(alloc.build(spec, pools.get(spec.name, [])))
        for rec in snap.allocations:
            alloc.commit(rec)
        alloc.resume_cursors()
        now = self.now_ms()
        for c in snap.cooling:
            if c.until_ms > now:
                alloc.apply_cooling(c)
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
        if owner_key in self._busy:
            return True
        rec = self.alloc.owners.get(owner_key)
        return rec is not None and rec.revision == revision

    def allocation_put(self, rec: AllocationRecord) -> None:
        if rec.owner.key not in self._busy:
            self.alloc.commit(rec)

    def allocation_deleted(self, owner_key: str) -> None:
        rec = self.alloc.owners.get(owner_key)
        if rec is not None and owner_key not in self._busy:
            # Released by another replica. Its cool-down record travels on
            # another watcher and may come later (or already have been
            # skipped): cool the addresses from now until it says exactly.
            self.alloc.forget(rec, cool=True, now_ms=self.now_ms())

    def cooling_put(self, cooling: Cooling) -> None:
        self.alloc.apply_cooling(cooling)

    def subnets_changed(self) -> None:
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.get_running_loop().create_task(self._refresh_subnets())

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
        pools: dict[str, list[PoolSpec]] = {}
        for pool in snap.pools:
            pools.setdefault(pool.subnet, []).append(pool)
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
        now = self.now_ms()
        for c in snap.cooling:
            if c.until_ms > now:
                self.alloc.apply_cooling(c)

    # ---- serialisation -------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _owner(self, key: str) -> AsyncIterator[None]:
        while (other := self._busy.get(key)) is not None:
            await other.wait()
        done = asyncio.Event()
        self._busy[key] = done
        try:
            yield
        finally:
            del self._busy[key]
            done.set()

    # ---- subnets -------------------------------------------------------------

    async def _subnet_change(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run a subnet/pool change alone (no allocation in flight).

        With a shared store another replica may have changed subnets since
        this one last heard: the store then refuses (Conflict), and the
        change is checked again against a fresh read before it is retried.
        """
        async with self._gate.exclusive():
            for _ in range(3):
                try:
                    return await attempt()
                except Conflict:
                    if self.store.kind == "sqlite":
                        raise
                    self._apply_subnets(await self.store.load())
            return await attempt()

    async def create_subnet(self, spec: SubnetSpec) -> SubnetSpec:
        spec = self.alloc.check_subnet_spec(spec)

        async def attempt() -> None:
            if spec.name in self.alloc.subnets:
                raise AlreadyExists(f"subnet {spec.name!r} exists", field="subnet.name")
            self.alloc.check_overlap(spec)
            state = self.alloc.build(spec, [])
            spec.revision = await self.store.create_subnet(spec)
            self.alloc.install(state)

        await self._subnet_change(attempt)
        log.info("subnet created", subnet=spec.name, cidrs=spec.cidrs, gateways=spec.gateways)
        return spec

    async def update_subnet(self, spec: SubnetSpec) -> SubnetSpec:
        old = self.alloc.subnet(spec.name, "subnet.name")
        if not spec.gateways and spec.cidrs == old.spec.cidrs:
            spec = replace(spec, gateways=list(old.spec.gateways))
        spec = self.alloc.check_subnet_spec(spec)

        async def attempt() -> SubnetSpec:
            old = self.alloc.subnet(spec.name, "subnet.name")
            self.alloc.check_overlap(spec)
            state = self.alloc.build(replace(spec), old.pools.values())
            shrunk = self.alloc.pool_conflicts(state)
            if shrunk:
                raise FailedPrecondition(
                    f"pools would lose addresses: {describe(shrunk)}; change the pools first",
                    field="subnet",
                )

            def check(records: Sequence[AllocationRecord]) -> None:
                bad = self.alloc.offenders(state, records)
                if bad:
                    raise FailedPrecondition(
                        f"{len(bad)} live allocation(s) would be invalid: {describe(bad)}",
                        field="subnet",
                    )

            state.spec.revision = await self.store.update_subnet(state.spec, check)
            self.alloc.install(state)
            return state.spec

        updated = await self._subnet_change(attempt)
        log.info("subnet updated", subnet=spec.name, cidrs=spec.cidrs, excludes=spec.excludes)
        return updated

    async def delete_subnet(self, name: str) -> None:
        async def attempt() -> None:
            self.alloc.subnet(name, "name")

            def check(records: Sequence[AllocationRecord]) -> None:
                if records:
                    keys = [f"{r.owner.key} ({', '.join(r.ips)})" for r in records]
                    raise FailedPrecondition(
                        f"subnet {name!r} has {len(records)} live allocation(s): {describe(keys)}",
                        field="name",
                    )

            await self.store.delete_subnet(name, check)
            self.alloc.remove_subnet(name)

        await self._subnet_change(attempt)
        log.info("subnet deleted", subnet=name)

    def get_subnet(self, name: str) -> SubnetSpec:
        return self.alloc.subnet(name, "name").spec

    def list_subnets(self) -> list[SubnetSpec]:
        return [s.spec for _, s in sorted(self.alloc.subnets.items())]

    # ---- pools ---------------------------------------------------------------

    async def create_pool(self, pool: PoolSpec) -> PoolSpec:
        async def attempt() -> PoolSpec:
            checked = self.alloc.check_pool(pool)
            state = self.alloc.subnet(checked.subnet, "pool.subnet")
            new = self.alloc.build(replace(state.spec), [*state.pools.values(), checked])
            new.spec.revision = await self.store.create_pool(checked)
            self.alloc.install(new)
            return checked

        created = await self._subnet_change(attempt)
        log.info("pool created", subnet=pool.subnet, pool=pool.name, addresses=pool.addresses)
        return created

    async def delete_pool(self, subnet: str, name: str) -> None:
        async def attempt() -> None:
            state = self.alloc.subnet(subnet, "subnet")
            if name not in state.pools:
                raise NotFound(f"no pool {name!r} in subnet {subnet!r}", field="name")

            def check(records: Sequence[AllocationRecord]) -> None:
                if records:
                    keys = [f"{r.owner.key} ({', '.join(r.ips)})" for r in records]
                    raise FailedPrecondition(
                        f"pool {name!r} has {len(records)} live allocation(s): {describe(keys)}",
                        field="name",
                    )

            revision = await self.store.delete_pool(subnet, name, check)
            rest = [p for n, p in state.pools.items() if n != name]
            new = self.alloc.build(replace(state.spec, revision=revision), rest)
            self.alloc.install(new)

        await self._subnet_change(attempt)
        log.info("pool deleted", subnet=subnet, pool=name)

    def list_pools(self, subnet: str = "") -> list[PoolSpec]:
        if subnet:
            return sorted(self.alloc.subnet(subnet, "subnet").pools.values(), key=lambda p: p.name)
        return [
            p
            for _, s in sorted(self.alloc.subnets.items())
            for p in sorted(s.pools.values(), key=lambda p: p.name)
        ]

    # ---- allocations ---------------------------------------------------------

    async def allocate(
        self,
        owner: Owner,
        *,
        ips: Sequence[str] = (),
        mac: str = "",
        pool: str = "",
        families: Sequence[int] = (),
        pod_uid: str = "",
        container_id: str = "",
    ) -> tuple[AllocationRecord, bool]:
        """The owner's allocation and whether it already existed."""
        existing = self.alloc.owners.get(owner.key)
        if existing is not None and owner.key not in self._busy:
            self.alloc.check_compatible(existing, ips=ips, mac=mac, pool=pool, families=families)
            return existing, True
        started = time.perf_counter()
        fixed_ips = {str(A.parse_ip(t, "ips")) for t in ips}
        if self.store.kind != "sqlite":
            known = self.alloc.subnets.get(owner.network)
            if known is None or (pool and pool not in known.pools):
                # Another replica may have created it a moment ago.
                await self.refresh_subnets()
        async with self._owner(owner.key), self._gate.shared():
            for _ in range(_RETRIES):
                existing = self.alloc.owners.get(owner.key)
                if existing is not None:
                    self.alloc.check_compatible(
                        existing, ips=ips, mac=mac, pool=pool, families=families
                    )
                    return existing, True
                state = self.alloc.subnet(owner.network)
                rec = self.alloc.reserve(
                    owner,
                    ips=ips,
                    mac=mac,
                    pool=pool,
                    families=families,
                    pod_uid=pod_uid,
                    container_id=container_id,
                    now_ms=self.now_ms(),
                )
                refusal = await self._commit(rec, state.spec.revision)
                if isinstance(refusal, OwnerExists):
                    self.alloc.commit(refusal.existing)
                    continue
                if isinstance(refusal, AddressTaken):
                    if refusal.ip in fixed_ips:
                        raise AlreadyExists(
                            f"{refusal.ip} is held by {refusal.holder}", field="ips"
                        )
                    CONFLICTS.labels(self.store.kind, "address").inc()
                    self.alloc.mark_foreign(owner.network, refusal.ip, refusal.holder)
                    continue
                if isinstance(refusal, AddressCooling):
                    c = refusal.cooling
                    if c.ip in fixed_ips:
                        wait = max(0.0, (c.until_ms - self.now_ms()) / 1000)
                        raise Unavailable(
                            f"{c.ip} was released by {c.previous_owner} and cools down for "
                            f"{wait:.1f}s more",
                            field="ips",
                            retry_after=wait,
                        )
                    CONFLICTS.labels(self.store.kind, "cooling").inc()
                    self.alloc.apply_cooling(c)
                    continue
                if isinstance(refusal, MacTaken):
                    if mac:
                        raise AlreadyExists(
                            f"{refusal.mac} is held by {refusal.holder}", field="mac"
                        )
                    CONFLICTS.labels(self.store.kind, "mac").inc()
                    self.alloc.macs[refusal.mac] = refusal.holder
                    continue
                if isinstance(refusal, SubnetChanged):
                    CONFLICTS.labels(self.store.kind, "subnet").inc()
                    await self._reload()
                    continue
                self._latency.observe(time.perf_counter() - started)
                log.info(
                    "allocated",
                    owner=owner.key,
                    ips=rec.ips,
                    mac=rec.mac,
                    pool=rec.pool,
                    pod_uid=pod_uid,
                    container_id=container_id,
                )
                return rec, False
        raise Unavailable(
            f"gave up allocating for {owner.key} after {_RETRIES} store conflicts",
            retry_after=0.1,
        )

    async def _commit(self, rec: AllocationRecord, subnet_revision: int) -> StoreRefusal | None:
        """Store a reserved allocation and settle memory to match, even if cancelled.

        A client that gives up (deadline, disconnect) cancels its call; the
        store write may still land. The write and the memory update after it
        therefore run in a task of their own that the cancellation does not
        reach, so memory never disagrees with what the store decided.
        """

        async def commit() -> StoreRefusal | None:
            try:
                rec.revision = await self.store.create_allocation(rec, subnet_revision)
            except StoreRefusal as refusal:
                self.alloc.unreserve(rec)
                return refusal
            except BaseException:
                self.alloc.unreserve(rec)
                raise
            self.alloc.confirm(rec)
            return None

        task = asyncio.get_running_loop().create_task(commit())
        task.add_done_callback(_retrieve)
        return await asyncio.shield(task)

    async def release(self, owner: Owner) -> list[AllocationRecord]:
        async with self._owner(owner.key):
            rec = self.alloc.owners.get(owner.key)
            for _ in range(_RETRIES):
                if rec is None and self.store.kind != "sqlite":
                    rec = await self.store.get_allocation(owner.key)
                if rec is None:
                    return []
                if await self._release(rec, "owner"):
                    return [rec]
                # Our copy was stale (another replica released and the owner
                # was allocated again): release what the store holds now.
                rec = None
            raise Unavailable(f"release of {owner.key} kept racing; retry", retry_after=0.1)

    async def release_address(self, subnet: str, ip_text: str) -> list[AllocationRecord]:
        ip = str(A.parse_ip(ip_text, "ip"))
        holder = self.alloc.holder_of(subnet, ip)
        if holder is None:
            return []
        return await self.release(Owner.from_key(holder))

    async def _release(self, rec: AllocationRecord, cause: str) -> bool:
        now = self.now_ms()
        cooling = (
            [
                Cooling(rec.owner.network, ip, now + self.cooldown_ms, rec.owner.key)
                for ip in rec.ips
            ]
            if self.cooldown_ms > 0
            else []
        )

        async def release() -> bool:  # shielded like _commit: memory follows the store
            done = await self.store.release(rec, cooling)
            self.alloc.forget(rec, cool=done, now_ms=now)
            return done

        task = asyncio.get_running_loop().create_task(release())
        task.add_done_callback(_retrieve)
        released = await asyncio.shield(task)
        if released:
            RELEASED.labels(self.store.kind, cause).inc()
            log.info(
                "released",
                owner=rec.owner.key,
                ips=rec.ips,
                mac=rec.mac,
                pod_uid=rec.pod_uid,
                container_id=rec.container_id,
                cause=cause,
            )
        return released

    async def get_allocation(self, owner: Owner) -> AllocationRecord:
        rec = self.alloc.owners.get(owner.key)
        if rec is None and self.store.kind != "sqlite":
            # Made on another replica a moment ago? The store knows.
            rec = await self.store.get_allocation(owner.key)
        if rec is None:
            raise NotFound(f"no allocation for {owner.key}", field="owner")
        return rec

    def list_allocations(
        self, *, subnet: str = "", namespace: str = "", pod: str = "", page_size: int = 0,
        page_token: str = "",
    ) -> tuple[list[AllocationRecord], str]:  # fmt: skip
        if page_size < 0 or page_size > MAX_PAGE:
            raise InvalidArgument(f"{page_size} is not within 0..{MAX_PAGE}", field="page_size")
        if page_token and page_token.count("/") != 3:
            raise InvalidArgument(f"{page_token!r} is not a page token", field="page_token")
        size = page_size or DEFAULT_PAGE
        keys = sorted(k for k in self.alloc.owners if k > page_token)
        out: list[AllocationRecord] = []
        for key in keys:
            rec = self.alloc.owners[key]
            o = rec.owner
            if (subnet and o.network != subnet) or (namespace and o.namespace != namespace):
                continue
            if pod and o.pod != pod:
                continue
            if len(out) == size:
                return out, out[-1].owner.key
            out.append(rec)
        return out, ""

    def usage(self, subnet: str = "") -> list[Usage]:
        names = [subnet] if subnet else sorted(self.alloc.subnets)
        return [u for name in names for u in self.alloc.usage(name, self.now_ms())]

    async def reconcile(
        self,
        live: Iterable[Owner],
        *,
        subnet: str = "",
        allocated_before_ms: int = 0,
        dry_run: bool = False,
    ) -> list[AllocationRecord]:
        if subnet:
            self.alloc.subnet(subnet, "subnet")
        alive = {o.key for o in live}
        records = await self.store.list_allocations(subnet)
        victims = [
            r
            for r in sorted(records, key=lambda r: r.owner.key)
            if r.owner.key not in alive
            and (allocated_before_ms <= 0 or r.created_ms < allocated_before_ms)
        ]
        if dry_run:
            return victims
        freed = []
        for rec in victims:
            async with self._owner(rec.owner.key):
                if await self._release(rec, "reconcile"):
                    freed.append(rec)
        log.info("reconciled", subnet=subnet or "*", live=len(alive), released=len(freed))
        return freed

    def address_details(self, rec: AllocationRecord) -> Iterator[tuple[str, int, str, int, str]]:
        """(ip, prefix length, gateway, family, cidr) for each address of a record."""
        state = self.alloc.subnets.get(rec.owner.network)
        for text in rec.ips:
            version = 6 if ":" in text else 4
            fam = state.families.get(version) if state else None
            if fam is None:
                yield text, 0, "", version, ""
            else:
                yield text, fam.net.prefixlen, fam.gateway_text, version, fam.cidr_text


def _retrieve(task: asyncio.Task[object]) -> None:
    """Mark a shielded task's failure as seen (the awaiting caller may be gone)."""
    if not task.cancelled():
        task.exception()


_CORES: weakref.WeakSet[IpamCore] = weakref.WeakSet()


class _AddressCollector(Collector):
    """kovn_ipam_addresses{subnet,family,state}, computed at scrape time."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "kovn_ipam_addresses",
            "Addresses per subnet, family and state (used, free, excluded, cooling, pooled).",
            labels=["subnet", "family", "state"],
        )
        # Runs on the metrics server's thread: read only, never expire or
        # otherwise change the allocator under the event loop's feet.
        for core in list(_CORES):
            alloc = core.alloc
            for name in list(alloc.subnets):
                try:
                    usages = alloc.usage(name, None)
                except NotFound:  # deleted meanwhile
                    continue
                for u in usages:
                    fam = FAMILY_NAME[u.family]
                    for state in ("used", "free", "excluded", "cooling", "pooled"):
                        gauge.add_metric([u.subnet, fam, state], float(getattr(u, state)))
        yield gauge


REGISTRY.register(_AddressCollector())
