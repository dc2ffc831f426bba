"""Allocator behaviour that the state machine does not pin down."""

from __future__ import annotations

import ipaddress

from services.ipam.allocator import Allocator
from services.ipam.model import AllocationRecord, Owner, SubnetSpec
from services.ipam.request import AllocationRequest
from services.ipam.subnets import check_subnet_spec


def _subnet(alloc: Allocator, cidr: str) -> None:
    spec = check_subnet_spec(SubnetSpec("net", [cidr], [], []))
    alloc.install(alloc.build(spec, []))


def _fill(alloc: Allocator, n: int) -> list[AllocationRecord]:
    out = []
    for i in range(n):
        rec = alloc.reserve(AllocationRequest(Owner("net", "ns", f"p{i}")), now_ms=0)
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
    space = after.subnets["net"].families[4].general
    steps_before = space.fresh_left
    rec = after.reserve(AllocationRequest(Owner("net", "ns", "new")), now_ms=0)
    assert int(ipaddress.ip_address(rec.ips[0])) == top + 1
    # One step of the walk, not one per held address (60,000 of them).
    assert steps_before - space.fresh_left == 1


def test_choosing_an_address_does_not_scan_a_slash_eight() -> None:
    alloc = Allocator(30_000)
    _subnet(alloc, "10.0.0.0/8")
    space = alloc.subnets["net"].families[4].general
    steps_before = space.fresh_left
    _fill(alloc, 200)
    assert steps_before - space.fresh_left == 200  # one step per allocation
