"""Allocating and releasing addresses: the store decides, memory follows.

The allocator guesses, the store decides. An allocation is chosen in memory,
committed to the store, and kept in memory only once the store accepted it;
a refusal (another replica got there first) teaches the allocator what it
did not know and the choice is made again. A write to the store, once sent,
settles memory even if the client gives up meanwhile, so that memory never
disagrees with what the store decided. Many allocations run at once; calls
for one owner run one after another.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Iterable, Iterator
from typing import Any, TypeVar

from services.common.errors import AlreadyExists, InvalidArgument, NotFound, Unavailable
from services.common.logging import get_logger
from services.ipam import addresses as A
from services.ipam.allocator import Usage
from services.ipam.metrics import CONFLICTS, RELEASED
from services.ipam.model import AllocationRecord, Cooling, Owner
from services.ipam.request import AllocationRequest, check_compatible
from services.ipam.store.base import (
    AddressCooling,
    AddressTaken,
    MacTaken,
    OwnerExists,
    StoreRefusal,
    SubnetChanged,
)
from services.ipam.view import StoreView

log = get_logger(__name__)
T = TypeVar("T")

_RETRIES = 32
DEFAULT_PAGE = 500
MAX_PAGE = 5000


class Allocations(StoreView):
    async def allocate(self, req: AllocationRequest) -> tuple[AllocationRecord, bool]:
        """The owner's allocation and whether it already existed."""
        owner = req.owner
        existing = self.alloc.owners.get(owner.key)
        if existing is not None and owner.key not in self._owners:
            check_compatible(existing, req)
            return existing, True
        started = time.perf_counter()
        fixed_ips = {str(A.parse_ip(t, "ips")) for t in req.ips}
        if self.store.kind != "sqlite":
            known = self.alloc.subnets.get(owner.network)
            if known is None or (req.pool and req.pool not in known.pools):
                # Another replica may have created it a moment ago.
                await self.refresh_subnets()
        async with self._owners.hold(owner.key), self._gate.shared():
            for _ in range(_RETRIES):
                existing = self.alloc.owners.get(owner.key)
                if existing is not None:
                    check_compatible(existing, req)
                    return existing, True
                state = self.alloc.subnet(owner.network)
                rec = self.alloc.reserve(req, now_ms=self.now_ms())
                refusal = await self._commit(rec, state.spec.revision)
                if refusal is not None:
                    await self._learn(refusal, req, fixed_ips)
                    continue
                self._latency.observe(time.perf_counter() - started)
                log.info(
                    "allocated",
                    owner=owner.key,
                    ips=rec.ips,
                    mac=rec.mac,
                    pool=rec.pool,
                    pod_uid=req.pod_uid,
                    container_id=req.container_id,
                )
                return rec, False
        raise Unavailable(
            f"gave up allocating for {owner.key} after {_RETRIES} store conflicts",
            retry_after=0.1,
        )

    async def _learn(
        self, refusal: StoreRefusal, req: AllocationRequest, fixed_ips: set[str]
    ) -> None:
        """Take in what a refusal says so the next choice is better.

        Raises instead when the refusal is the answer: the client asked for
        exactly the address or MAC that someone else holds.
        """
        kind = self.store.kind
        if isinstance(refusal, OwnerExists):
            self.alloc.commit(refusal.existing)
        elif isinstance(refusal, AddressTaken):
            if refusal.ip in fixed_ips:
                raise AlreadyExists(f"{refusal.ip} is held by {refusal.holder}", field="ips")
            CONFLICTS.labels(kind, "address").inc()
            self.alloc.mark_foreign(req.owner.network, refusal.ip, refusal.holder)
        elif isinstance(refusal, AddressCooling):
            c = refusal.cooling
            if c.ip in fixed_ips:
                wait = max(0.0, (c.until_ms - self.now_ms()) / 1000)
                raise Unavailable(
                    f"{c.ip} was released by {c.previous_owner} and cools down for "
                    f"{wait:.1f}s more",
                    field="ips",
                    retry_after=wait,
                )
            CONFLICTS.labels(kind, "cooling").inc()
            self.alloc.apply_cooling(c)
        elif isinstance(refusal, MacTaken):
            if req.mac:
                raise AlreadyExists(f"{refusal.mac} is held by {refusal.holder}", field="mac")
            CONFLICTS.labels(kind, "mac").inc()
            self.alloc.macs[refusal.mac] = refusal.holder
        elif isinstance(refusal, SubnetChanged):
            CONFLICTS.labels(kind, "subnet").inc()
            await self._reload()
        else:  # a refusal this code does not know how to retry: the client hears it
            raise refusal

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

        return await _shielded(commit())

    async def release(self, owner: Owner) -> list[AllocationRecord]:
        async with self._owners.hold(owner.key):
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

        released = await _shielded(release())
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
            async with self._owners.hold(rec.owner.key):
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


async def _shielded(work: Coroutine[Any, Any, T]) -> T:
    """Run `work` to its end in a task of its own, even if the caller is cancelled."""
    task = asyncio.get_running_loop().create_task(work)
    task.add_done_callback(_retrieve)
    return await asyncio.shield(task)


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a shielded task's failure as seen (the awaiting caller may be gone)."""
    if not task.cancelled():
        task.exception()
