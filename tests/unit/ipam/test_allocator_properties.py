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

COOLDOWN_MS = 5_000
CIDR = ipaddress.ip_network("10.0.0.0/27")
GATEWAY = "10.0.0.1"
EXCLUDED = {f"10.0.0.{n}" for n in (5, 6, 7, 20)}
POOL = {f"10.0.0.{n}" for n in range(24, 28)}
NEVER = {"10.0.0.0", "10.0.0.31", GATEWAY, *EXCLUDED}
GENERAL = {str(ip) for ip in CIDR} - NEVER - POOL
OWNERS = [Owner("net", "ns", f"p{i}") for i in range(40)]


class AllocatorMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 1_000_000
        self.alloc = Allocator(COOLDOWN_MS, seed=1)
        spec = self.alloc.check_subnet_spec(
            SubnetSpec("net", [str(CIDR)], [], ["10.0.0.5-10.0.0.7", "10.0.0.20"])
        )
        self.alloc.install(self.alloc.build(spec, [PoolSpec("net", "pool", ["10.0.0.24/30"])]))
        self.held: dict[Owner, AllocationRecord] = {}
        self.cooling: dict[str, tuple[int, Owner]] = {}  # ip -> (until, previous owner)

    def _allocate(self, owner: Owner, ips: list[str], pool: str) -> AllocationRecord:
        """What IpamCore does around the allocator (without a store)."""
        existing = self.alloc.owners.get(owner.key)
        if existing is not None:
            return existing
        rec = self.alloc.reserve(owner, ips=ips, pool=pool, now_ms=self.now)
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
        space = POOL if from_pool else GENERAL
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

    @rule(i=st.integers(0, len(OWNERS) - 1), n=st.sampled_from(sorted(GENERAL | NEVER)))
    def allocate_fixed(self, i: int, n: str) -> None:
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
            assert n in NEVER
            return
        assert n not in NEVER and holder is None
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
                assert ip not in NEVER
                seen[ip] = key
        macs = [r.mac for r in self.alloc.owners.values()]
        assert len(set(macs)) == len(macs)

    @invariant()
    def counts_match_the_model(self) -> None:
        (usage,) = self.alloc.usage("net", self.now)
        assert usage.used == sum(len(r.ips) for r in self.held.values())
        assert usage.free == len(self._free_in(GENERAL))


TestAllocator = AllocatorMachine.TestCase
TestAllocator.settings = settings(
    max_examples=150,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
