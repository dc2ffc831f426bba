"""Creating, changing and deleting subnets and pools, one change at a time.

A subnet or pool change rebuilds the allocator's state of that subnet and
must be checked against every live allocation, so it runs alone (no
allocation in flight) and is retried on a fresh read when another replica
changed subnets at the same moment. These rules are what set subnet
administration apart from allocations, which run many at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TypeVar

from services.common.errors import AlreadyExists, Conflict, FailedPrecondition, NotFound
from services.common.logging import get_logger
from services.ipam.model import AllocationRecord, PoolSpec, SubnetSpec
from services.ipam.store.base import AllocationCheck
from services.ipam.subnets import (
    check_overlap,
    check_pool,
    check_subnet_spec,
    describe,
    offenders,
    pool_conflicts,
)
from services.ipam.view import StoreView

log = get_logger(__name__)
T = TypeVar("T")


def no_live_allocations(what: str) -> AllocationCheck:
    """A store check refusing a delete while `what` still has allocations."""

    def check(records: Sequence[AllocationRecord]) -> None:
        if records:
            keys = [f"{r.owner.key} ({', '.join(r.ips)})" for r in records]
            raise FailedPrecondition(
                f"{what} has {len(records)} live allocation(s): {describe(keys)}", field="name"
            )

    return check


class SubnetAdmin(StoreView):
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

    # ---- subnets -------------------------------------------------------------

    async def create_subnet(self, spec: SubnetSpec) -> SubnetSpec:
        spec = check_subnet_spec(spec)

        async def attempt() -> None:
            if spec.name in self.alloc.subnets:
                raise AlreadyExists(f"subnet {spec.name!r} exists", field="subnet.name")
            check_overlap(self.alloc.subnets.values(), spec)
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
        spec = check_subnet_spec(spec)

        async def attempt() -> SubnetSpec:
            old = self.alloc.subnet(spec.name, "subnet.name")
            check_overlap(self.alloc.subnets.values(), spec)
            state = self.alloc.build(replace(spec), old.pools.values())
            shrunk = pool_conflicts(state)
            if shrunk:
                raise FailedPrecondition(
                    f"pools would lose addresses: {describe(shrunk)}; change the pools first",
                    field="subnet",
                )

            def check(records: Sequence[AllocationRecord]) -> None:
                bad = offenders(state, records)
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
            await self.store.delete_subnet(name, no_live_allocations(f"subnet {name!r}"))
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
            checked = check_pool(self.alloc.subnet(pool.subnet, "pool.subnet"), pool)
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
            check = no_live_allocations(f"pool {name!r}")
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
