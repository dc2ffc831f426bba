"""What one Allocate asks for, and whether a subnet can give it that.

An allocation request travels from the servicer through the core to the
allocator; it is one frozen value so that its seven fields are written once
and no layer can change what the client asked for on the way. The checks of
a request against a subnet (a fixed address inside the CIDR and free, the
families the subnet or pool has, a repeated call asking for what the owner
already holds) live here because they depend only on the request and the
subnet's state, not on how the allocator picks addresses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from services.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from services.ipam import addresses as A
from services.ipam.model import AllocationRecord, Owner
from services.ipam.subnets import SubnetState


@dataclass(frozen=True)
class AllocationRequest:
    """An owner's request; empty fields leave the choice to the allocator."""

    owner: Owner
    ips: Sequence[str] = ()
    mac: str = ""
    pool: str = ""
    families: Sequence[int] = ()
    pod_uid: str = ""
    container_id: str = ""

    def __post_init__(self) -> None:
        # Callers pass lists; keep copies nobody else can change.
        object.__setattr__(self, "ips", tuple(self.ips))
        object.__setattr__(self, "families", tuple(self.families))


def fixed_addresses(state: SubnetState, req: AllocationRequest, now_ms: int) -> dict[int, int]:
    """The requested fixed addresses per family, each checked to be free for this owner."""
    owner, pool = req.owner, req.pool
    if pool and pool not in state.pools:
        raise NotFound(f"no pool {pool!r} in subnet {state.spec.name!r}", field="pool")
    fixed: dict[int, int] = {}
    for text in req.ips:
        ip = A.parse_ip(text, "ips")
        fam = state.families.get(ip.version)
        if fam is None or ip not in fam.net:
            raise InvalidArgument(
                f"{text} is outside subnet {state.spec.name!r} ({', '.join(state.spec.cidrs)})",
                field="ips",
            )
        if ip.version in fixed:
            raise InvalidArgument(f"{text}: at most one address per family", field="ips")
        value = int(ip)
        if value == fam.gateway:
            raise InvalidArgument(f"{text} is the gateway of {fam.net}", field="ips")
        if fam.is_blocked(value):
            raise InvalidArgument(
                f"{text} is excluded (network, broadcast or an excluded range)", field="ips"
            )
        in_pool = fam.pool_of(value)
        if in_pool != (pool or None):
            if in_pool is None:
                raise InvalidArgument(f"{text} is not in pool {pool!r}", field="ips")
            raise InvalidArgument(
                f"{text} belongs to pool {in_pool!r}; request that pool", field="ips"
            )
        holder = fam.used.get(value)
        if holder is not None and holder != owner.key:
            raise AlreadyExists(f"{text} is held by {holder}", field="ips")
        fam.expire(now_ms)
        cooling = fam.cooling.get(value)
        if cooling is not None and cooling[1] != owner.key:
            wait = (cooling[0] - now_ms) / 1000
            raise Unavailable(
                f"{text} was released by {cooling[1]} and cools down for {wait:.1f}s more",
                field="ips",
                retry_after=wait,
            )
        fixed[ip.version] = value
    return fixed


def wanted_families(state: SubnetState, req: AllocationRequest, fixed: dict[int, int]) -> list[int]:
    """The families to give an address of, in the subnet's order."""
    families, pool = req.families, req.pool
    for v in families:
        if v not in state.families:
            raise InvalidArgument(
                f"subnet {state.spec.name!r} has no IPv{v} CIDR", field="families"
            )
    for v in fixed:
        if families and v not in families:
            raise InvalidArgument(
                f"a fixed IPv{v} address was given but IPv{v} is not in families",
                field="families",
            )
    if families:
        wanted = [v for v in state.families if v in families]
    elif pool:
        wanted = [v for v, fam in state.families.items() if fam.pools[pool].size or v in fixed]
    else:
        wanted = list(state.families)
    if pool:
        for v in wanted:
            if v not in fixed and not state.families[v].pools[pool].size:
                raise InvalidArgument(f"pool {pool!r} has no IPv{v} addresses", field="families")
    return wanted


def check_compatible(rec: AllocationRecord, req: AllocationRequest) -> None:
    """A repeated Allocate must ask for what the owner already has."""
    held = {ipaddress.ip_address(t) for t in rec.ips}
    for text in req.ips:
        if A.parse_ip(text, "ips") not in held:
            raise FailedPrecondition(
                f"{rec.owner.key} already holds {', '.join(rec.ips)}, not {text}; release it first",
                field="ips",
            )
    if req.mac and A.parse_mac(req.mac, "mac") != rec.mac:
        raise FailedPrecondition(
            f"{rec.owner.key} already holds MAC {rec.mac}, not {req.mac}", field="mac"
        )
    if req.pool and req.pool != rec.pool:
        raise FailedPrecondition(
            f"{rec.owner.key} was allocated from pool {rec.pool!r}, not {req.pool!r}",
            field="pool",
        )
    have = {ip.version for ip in held}
    missing = [v for v in req.families if v not in have]
    if missing:
        raise FailedPrecondition(
            f"{rec.owner.key} holds no IPv{missing[0]} address ({', '.join(rec.ips)})",
            field="families",
        )
