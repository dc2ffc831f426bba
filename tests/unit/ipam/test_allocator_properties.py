"""Property-based tests of the allocator's invariants (hypothesis state machine).

A random mix of allocations (automatic, fixed, from a pool), releases and
time steps runs against the Allocator while a plain model of the subnet
checks after every step: no address has two owners, none is the network,
broadcast, gateway or an excluded address, a released address is not given
to a new owner during its cool-down, the same owner gets the same answer,
and "exhausted" is only said when the model agrees nothing is free.
"""

from __future__ import annotations

import ipaddress

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from services.common.errors import AlreadyExists, ResourceExhausted, Unavailable
from services.ipam.allocator import Allocator
from services.ipam.model import AllocationRecord, Owner, PoolSpec, SubnetSpec
from services.ipam.request import AllocationRequest
from services.ipam.subnets import check_subnet_spec

COOLDOWN_MS = 5_000
OWNERS = [Owner("net", "ns", f"p{i}") for i in range(40)]


class Plan:
    """A small subnet (so exhaustion happens) and the sets the model checks against."""

    def __init__(self, cidr: str, excludes: list[str], pool: str) -> None:
        net = ipaddress.ip_network(cidr)
        self.cidr, self.excludes, self.pool_spec = cidr, excludes, pool
        every = [str(ip) for ip in net]
        self.gateway = every[1]
        excluded = {str(ip) for ex in excludes for ip in _expand(ex)}
        special = {every[0], self.gateway} | ({every[-1]} if net.version == 4 else set())
        self.never = special | excluded
        self.pool = {str(ip) for ip in ipaddress.ip_network(pool)} - self.never
        self.general = set(every) - self.never - self.pool


def _expand(text: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    lo, _, hi = text.partition("-")
    first = ipaddress.ip_address(lo)
    last = ipaddress.ip_address(hi or lo)
    return [ipaddress.ip_address(n) for n in range(int(first), int(last) + 1)]


V4 = Plan("10.0.0.0/27", ["10.0.0.5-10.0.0.7", "10.0.0.20"], "10.0.0.24/30")
V6 = Plan("fd00::/123", ["fd00::5-fd00::7", "fd00::14"], "fd00::18/126")


class AllocatorMachine(RuleBasedStateMachine):
    plan = V4

    def __init__(self) -> None:
        super().__init__()
        self.now = 1_000_000
        self.alloc = Allocator(COOLDOWN_MS, seed=1)
        p = self.plan
        spec = check_subnet_spec(SubnetSpec("net", [p.cidr], [], p.excludes))
        self.alloc.install(self.alloc.build(spec, [PoolSpec("net", "pool", [p.pool_spec])]))
        self.held: dict[Owner, AllocationRecord] = {}
        self.cooling: dict[str, tuple[int, Owner]] = {}  # ip -> (until, previous owner)

    def _allocate(self, owner: Owner, ips: list[str], pool: str) -> AllocationRecord:
        """What IpamCore does around the allocator (without a store)."""
        existing = self.alloc.owners.get(owner.key)
        if existing is not None:
            return existing
        rec = self.alloc.reserve(AllocationRequest(owner, ips=ips, pool=pool), now_ms=self.now)
        self.alloc.commit(rec)
        return rec

    def _free_in(self, space: set[str]) -> set[str]:
        held = {ip for r in self.held.values() for ip in r.ips}
        cooling = {ip for ip, (until, _) in self.cooling.items() if until > self.now}
        return space - held - cooling

    @rule(i=st.integers(0, len(OWNERS) - 1), from_pool=st.booleans())
    def allocate(self, i: int, from_pool: bool) -> None:
        owner = OWNERS[i]
        before = self.held.get(owner)
        space = self.plan.pool if from_pool else self.plan.general
        try:
            rec = self._allocate(owner, [], "pool" if from_pool else "")
        except ResourceExhausted:
            assert before is None
            assert not self._free_in(space), "exhausted while the model has free addresses"
            return
        if before is not None:
            assert rec is before  # idempotent: the same answer
            return
        (ip,) = rec.ips
        assert ip in space
        until, prev = self.cooling.get(ip, (0, owner))
        assert until <= self.now or prev == owner, f"{ip} reused during its cool-down"
        self.held[owner] = rec

    @rule(i=st.integers(0, len(OWNERS) - 1), pick=st.integers(0, 31))
    def allocate_fixed(self, i: int, pick: int) -> None:
        candidates = sorted(self.plan.general | self.plan.never)
        n = candidates[pick % len(candidates)]
        owner = OWNERS[i]
        if owner in self.held:
            return
        holder = next((o for o, r in self.held.items() if n in r.ips), None)
        try:
            rec = self._allocate(owner, [n], "")
        except AlreadyExists:
            assert holder is not None
            return
        except Unavailable:
            until, prev = self.cooling[n]
            assert until > self.now and prev != owner
            return
        except Exception:
            assert n in self.plan.never
            return
        assert n not in self.plan.never and holder is None
        assert rec.ips == [n]
        self.held[owner] = rec

    @rule(i=st.integers(0, len(OWNERS) - 1))
    def release(self, i: int) -> None:
        owner = OWNERS[i]
        rec = self.alloc.owners.get(owner.key)
        assert (rec is None) == (owner not in self.held)
        if rec is None:
            return
        self.alloc.forget(rec, cool=True, now_ms=self.now)
        del self.held[owner]
        for ip in rec.ips:
            self.cooling[ip] = (self.now + COOLDOWN_MS, owner)

    @rule(seconds=st.sampled_from([0.5, 2, 6]))
    def tick(self, seconds: float) -> None:
        self.now += int(seconds * 1000)

    @invariant()
    def no_address_twice_and_never_reserved(self) -> None:
        seen: dict[str, str] = {}
        for key, rec in self.alloc.owners.items():
            for ip in rec.ips:
                assert ip not in seen, f"{ip} held by {seen.get(ip)} and {key}"
                assert ip not in self.plan.never
                seen[ip] = key
        macs = [r.mac for r in self.alloc.owners.values()]
        assert len(set(macs)) == len(macs)

    @invariant()
    def counts_match_the_model(self) -> None:
        (usage,) = self.alloc.usage("net", self.now)
        assert usage.used == sum(len(r.ips) for r in self.held.values())
        assert usage.free == len(self._free_in(self.plan.general))


class V6Machine(AllocatorMachine):
    plan = V6


SETTINGS = settings(
    max_examples=120,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestAllocatorV4 = AllocatorMachine.TestCase
TestAllocatorV4.settings = SETTINGS
TestAllocatorV6 = V6Machine.TestCase
TestAllocatorV6.settings = SETTINGS
