"""The rules a subnet or pool definition must follow, checked before any write.

A subnet or pool change is refused here, with the field named, before it
reaches the store: a definition that overlaps another subnet, a gateway
outside its CIDR, a pool member that is excluded, or a change that would
strand live allocations or pool members. Keeping these rules apart from the
allocator's bookkeeping lets both the allocator (building state) and the
core (checking a change against what the store holds) use them.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable
from dataclasses import dataclass

from services.common.errors import AlreadyExists, InvalidArgument
from services.ipam import addresses as A
from services.ipam.model import AllocationRecord, PoolSpec, SubnetSpec, check_name
from services.ipam.spaces import FamilyState

_SHOW = 5  # offenders listed in a FAILED_PRECONDITION message


@dataclass
class SubnetState:
    spec: SubnetSpec
    families: dict[int, FamilyState]
    pools: dict[str, PoolSpec]


def check_subnet_spec(spec: SubnetSpec) -> SubnetSpec:
    """Validate and normalise a spec (default gateways); no state changes."""
    check_name(spec.name, "subnet.name")
    if not spec.cidrs:
        raise InvalidArgument("at least one CIDR is required", field="subnet.cidrs")
    nets = [A.parse_cidr(c, "subnet.cidrs") for c in spec.cidrs]
    versions = [n.version for n in nets]
    if len(set(versions)) != len(versions):
        raise InvalidArgument(
            f"{spec.cidrs!r}: at most one CIDR per family (dual-stack is one v4 + one v6)",
            field="subnet.cidrs",
        )
    if spec.gateways and len(spec.gateways) != len(nets):
        raise InvalidArgument(
            f"{spec.gateways!r}: give one gateway per CIDR ({len(nets)}) or none",
            field="subnet.gateways",
        )
    gateways: list[str] = []
    for i, net in enumerate(nets):
        if spec.gateways:
            gw = A.parse_ip(spec.gateways[i], "subnet.gateways")
            if gw.version != net.version or gw not in net:
                raise InvalidArgument(
                    f"{spec.gateways[i]!r} is outside {net}", field="subnet.gateways"
                )
            if gw == net.network_address or (net.version == 4 and gw == net.broadcast_address):
                raise InvalidArgument(
                    f"{spec.gateways[i]!r} is the network or broadcast address of {net}",
                    field="subnet.gateways",
                )
        else:
            gw = net.network_address + 1
        gateways.append(str(gw))
    excluded = A.parse_ranges(spec.excludes, "subnet.excludes")
    for version, intervals in excluded.items():
        if intervals and version not in versions:
            raise InvalidArgument(
                f"IPv{version} exclusions but the subnet has no IPv{version} CIDR",
                field="subnet.excludes",
            )
    return SubnetSpec(
        spec.name, [str(n) for n in nets], gateways, list(spec.excludes), spec.revision
    )


def check_overlap(subnets: Iterable[SubnetState], spec: SubnetSpec) -> None:
    """AlreadyExists if a CIDR of `spec` overlaps one of another subnet."""
    nets = [ipaddress.ip_network(c) for c in spec.cidrs]
    for other in subnets:
        if other.spec.name == spec.name:
            continue
        for theirs in other.families.values():
            for mine in nets:
                if mine.version == theirs.version and mine.overlaps(theirs.net):
                    raise AlreadyExists(
                        f"{mine} overlaps {theirs.net} of subnet {other.spec.name!r}",
                        field="subnet.cidrs",
                    )


def build(spec: SubnetSpec, pools: Iterable[PoolSpec], rng: random.Random | None) -> SubnetState:
    """Fresh state for a (validated) spec and its pools; no allocations yet.

    `rng` starts each space's cursor at a random point (None: at its start).
    """
    pool_map = {p.name: p for p in pools}
    excluded = A.parse_ranges(spec.excludes, "subnet.excludes")
    pool_ranges = {
        name: A.parse_ranges(p.addresses, "pool.addresses") for name, p in pool_map.items()
    }
    families: dict[int, FamilyState] = {}
    for cidr, gw in zip(spec.cidrs, spec.gateways, strict=True):
        net = ipaddress.ip_network(cidr)
        families[net.version] = FamilyState(
            net,
            int(ipaddress.ip_address(gw)),
            excluded[net.version],
            {name: r[net.version] for name, r in pool_ranges.items()},
            rng,
        )
    return SubnetState(spec, families, pool_map)


def offenders(state: SubnetState, records: Iterable[AllocationRecord]) -> list[str]:
    """Allocations that would be invalid under `state` (outside, gateway, excluded)."""
    bad: list[str] = []
    for rec in records:
        for text in rec.ips:
            ip = ipaddress.ip_address(text)
            fam = state.families.get(ip.version)
            why = None
            if fam is None or ip not in fam.net:
                why = "outside the new CIDRs"
            elif int(ip) == fam.gateway:
                why = "is the gateway"
            elif fam.is_blocked(int(ip)):
                why = "excluded"
            elif rec.pool and (
                rec.pool not in fam.pools or not fam.pools[rec.pool].contains(int(ip))
            ):
                why = f"outside pool {rec.pool!r}"
            if why:
                bad.append(f"{text} ({rec.owner.key}) {why}")
    return bad


def pool_conflicts(state: SubnetState) -> list[str]:
    """Pool members that `state` leaves outside its CIDRs or blocks."""
    bad: list[str] = []
    for name, pool in state.pools.items():
        for version, intervals in A.parse_ranges(pool.addresses, "pool.addresses").items():
            fam = state.families.get(version)
            kept = fam.pools[name].intervals if fam else []
            lost = A.subtract(intervals, kept)
            if lost:
                where = A.ip_text(version, lost[0][0])
                bad.append(f"pool {name!r} member {where} would be outside or excluded")
    return bad


def check_pool(state: SubnetState, pool: PoolSpec) -> PoolSpec:
    """Validate a new pool of the subnet `state` describes; a normalised copy."""
    check_name(pool.name, "pool.name")
    if pool.name in state.pools:
        raise AlreadyExists(
            f"pool {pool.name!r} exists in subnet {pool.subnet!r}", field="pool.name"
        )
    if not pool.addresses:
        raise InvalidArgument("a pool needs at least one address", field="pool.addresses")
    ranges = A.parse_ranges(pool.addresses, "pool.addresses")
    for version, intervals in ranges.items():
        if not intervals:
            continue
        fam = state.families.get(version)
        if fam is None:
            raise InvalidArgument(
                f"IPv{version} addresses but subnet {pool.subnet!r} has no IPv{version} CIDR",
                field="pool.addresses",
            )
        whole = [(int(fam.net.network_address), int(fam.net.broadcast_address))]
        outside = A.subtract(intervals, whole)
        if outside:
            raise InvalidArgument(
                f"{fam.text(outside[0][0])} is outside {fam.net}", field="pool.addresses"
            )
        blocked = A.intersect(intervals, fam.blocked)
        if blocked:
            raise InvalidArgument(
                f"{fam.text(blocked[0][0])} is a network, broadcast, gateway or excluded address",
                field="pool.addresses",
            )
        for name, space in fam.pools.items():
            overlap = A.intersect(intervals, space.intervals)
            if overlap:
                raise AlreadyExists(
                    f"{fam.text(overlap[0][0])} already belongs to pool {name!r}",
                    field="pool.addresses",
                )
    return PoolSpec(pool.subnet, pool.name, list(pool.addresses))


def describe(bad: list[str]) -> str:
    """The first few offenders for an error message, and how many more there are."""
    more = f" and {len(bad) - _SHOW} more" if len(bad) > _SHOW else ""
    return "; ".join(bad[:_SHOW]) + more
