"""Allocator behaviour that the state machine does not pin down."""

from __future__ import annotations

import ipaddress
import time

from services.ipam.allocator import Allocator
from services.ipam.model import AllocationRecord, Owner, SubnetSpec


def _subnet(alloc: Allocator, cidr: str) -> None:
    spec = alloc.check_subnet_spec(SubnetSpec("net", [cidr], [], []))
    alloc.install(alloc.build(spec, []))


def _fill(alloc: Allocator, n: int) -> list[AllocationRecord]:
    out = []
    for i in range(n):
        rec = alloc.reserve(Owner("net", "ns", f"p{i}"), now_ms=0)
        alloc.confirm(rec)
        out.append(rec)
    return out


def test_after_a_restart_the_walk_resumes_above_the_used_addresses() -> None:
    before = Allocator(30_000)
    _subnet(before, "10.0.0.0/16")
    records = _fill(before, 60_000)
    after = Allocator(30_000)
    _subnet(after, "10.0.0.0/16")
    for rec in records:
        after.commit(rec)
    after.resume_cursors()
    top = max(int(ipaddress.ip_address(r.ips[0])) for r in records)
    started = time.perf_counter()
    rec = after.reserve(Owner("net", "ns", "new"), now_ms=0)
    assert int(ipaddress.ip_address(rec.ips[0])) == top + 1
    # No walk over the 60,000 held addresses (that took tens of ms).
    assert time.perf_counter() - started < 0.005


def test_a_slash_eight_costs_no_more_per_allocation_than_a_slash_24() -> None:
    costs = {}
    for cidr in ("10.1.0.0/24", "10.0.0.0/8"):
        alloc = Allocator(30_000)
        _subnet(alloc, cidr)
        started = time.perf_counter()
        _fill(alloc, 200)
        costs[cidr] = time.perf_counter() - started
    assert costs["10.0.0.0/8"] < 3 * costs["10.1.0.0/24"] + 0.01
