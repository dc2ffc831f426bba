"""The allocator: which address and MAC a new owner gets, as pure logic.

It keeps, per subnet and family, the structures that make choosing a free
address cheap without scanning the subnet: the allowed address space as
intervals (CIDR minus network, broadcast, gateway and exclusions; pools are
spaces of their own), a cursor over addresses never handed out since the
state was built, a pile of recycled addresses whose cool-down has passed,
and a heap of cooling addresses ordered by when they may be reused. All of
it is rebuilt from the store's records at start; the store, not this module,
owns the truth, so a stale choice (another replica took the address) only
costs a retry.

Nothing here does I/O: `reserve` picks and marks addresses in memory, the
caller commits the record to the store and then calls `confirm` or
`unreserve`.
"""

from __future__ import annotations

import heapq
import ipaddress
import random
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from services.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from services.ipam import addresses as A
from services.ipam.model import (
    AllocationRecord,
    Cooling,
    Owner,
    PoolSpec,
    SubnetSpec,
    check_name,
)

FAMILY_NAME = {4: "IPv4", 6: "IPv6"}
_SHOW = 5  # offenders listed in a FAILED_PRECONDITION message


class Space:
    """The addresses of one family handed out for one purpose (general or a pool)."""

    def __init__(self, intervals: list[A.Interval], rng: random.Random | None = None) -> None:
        self.intervals = intervals
        self.starts = [lo for lo, _ in intervals]
        self.size = A.size(intervals)
        self.fresh_left = self.size
        self.idx = 0
        self.cursor = intervals[0][0] if intervals else 0
        self.recycled: list[int] = []
        self.used = 0
        self.cooling = 0
        if rng is not None and self.size:
            # Replicas sharing a store start at different points, so they
            # rarely race for the same address.
            offset = rng.randrange(self.size)
            for i, (lo, hi) in enumerate(intervals):
                if offset <= hi - lo:
                    self.idx, self.cursor = i, lo + offset
                    break
                offset -= hi - lo + 1

    def contains(self, ip: int) -> bool:
        return A.contains(self.intervals, self.starts, ip)

    def start_after(self, ip: int) -> None:
        """Begin the fresh walk just above `ip` (it still wraps round to cover all)."""
        i = bisect_right(self.starts, ip) - 1
        if i < 0 or not self.intervals:
            return
        self.idx, self.cursor = i, ip + 1

    @property
    def free(self) -> int:
        return self.size - self.used - self.cooling

    def take(self, busy: Callable[[int], bool]) -> int | None:
        """Next address not busy: first never-used ones, then recycled ones."""
        n = len(self.intervals)
        while self.fresh_left > 0:
            hi = self.intervals[self.idx][1]
            if self.cursor > hi:
                self.idx = (self.idx + 1) % n
                self.cursor = self.intervals[self.idx][0]
                continue
            ip = self.cursor
            self.cursor += 1
            self.fresh_left -= 1
            if not busy(ip):
                return ip
        while self.recycled:
            ip = self.recycled.pop()
            if not busy(ip):
                return ip
        return None


class FamilyState:
    """One CIDR of a subnet: its spaces, used and cooling addresses."""

    def __init__(
        self,
        net: A.IPNetwork,
        gateway: int,
        excluded: list[A.Interval],
        pools: dict[str, list[A.Interval]],
        rng: random.Random | None,
    ) -> None:
        self.version = net.version
        self.net = net
        self.gateway = gateway
        self.gateway_text = A.ip_text(net.version, gateway)
        self.cidr_text = str(net)
        whole = [(int(net.network_address), int(net.broadcast_address))]
        special = [(int(net.network_address), int(net.network_address)), (gateway, gateway)]
        if net.version == 4:
            special.append((int(net.broadcast_address), int(net.broadcast_address)))
        self.blocked = A.intersect(A.normalise([*excluded, *special]), whole)
        self.blocked_starts = [lo for lo, _ in self.blocked]
        allowed = A.subtract(whole, self.blocked)
        self.pools = {name: Space(A.intersect(iv, allowed), rng) for name, iv in pools.items()}
        every_pool = A.normalise(iv for space in self.pools.values() for iv in space.intervals)
        self.general = Space(A.subtract(allowed, every_pool), rng)
        self._pool_index = sorted(
            (lo, hi, name) for name, space in self.pools.items() for lo, hi in space.intervals
        )
        self._pool_starts = [lo for lo, _, _ in self._pool_index]
        self.used: dict[int, str] = {}
        self.cooling: dict[int, tuple[int, str]] = {}
        # (until, ip) min-heap: cool-downs end in order even when they arrive
        # out of order (loaded from a store, or from replicas with other clocks).
        self.cool_queue: list[tuple[int, int]] = []

    def text(self, ip: int) -> str:
        return A.ip_text(self.version, ip)

    def pool_of(self, ip: int) -> str | None:
        i = bisect_right(self._pool_starts, ip) - 1
        if i >= 0 and ip <= self._pool_index[i][1]:
            return self._pool_index[i][2]
        return None

    def space_of(self, ip: int) -> Space | None:
        pool = self.pool_of(ip)
        if pool is not None:
            return self.pools[pool]
        return self.general if self.general.contains(ip) else None

    def busy(self, ip: int) -> bool:
        return ip in self.used or ip in self.cooling

    def is_blocked(self, ip: int) -> bool:
        return A.contains(self.blocked, self.blocked_starts, ip)

    def expire(self, now_ms: int) -> None:
        while self.cool_queue and self.cool_queue[0][0] <= now_ms:
            until, ip = heapq.heappop(self.cool_queue)
            entry = self.cooling.get(ip)
            if entry is None or entry[0] != until:
                continue  # re-cooled or reclaimed since
            del self.cooling[ip]
            space = self.space_of(ip)
            if space is not None:
                space.cooling -= 1
                space.recycled.append(ip)

    def mark_used(self, ip: int, owner_key: str) -> None:
        if ip in self.used:
            self.used[ip] = owner_key
            return
        space = self.space_of(ip)
        if ip in self.cooling:
            del self.cooling[ip]
            if space is not None:
                space.cooling -= 1
        self.used[ip] = owner_key
        if space is not None:
            space.used += 1

    def unmark(self, ip: int, cool_until: int | None, previous_owner: str) -> None:
        """The address is no longer held; cool it down or make it reusable now."""
        if self.used.pop(ip, None) is None:
            return
        space = self.space_of(ip)
        if space is not None:
            space.used -= 1
        if cool_until is not None:
            self.add_cooling(ip, cool_until, previous_owner)
        elif space is not None:
            space.recycled.append(ip)

    def add_cooling(self, ip: int, until_ms: int, previous_owner: str) -> None:
        space = self.space_of(ip)
        if ip not in self.cooling and space is not None:
            space.cooling += 1
        self.cooling[ip] = (until_ms, previous_owner)
        heapq.heappush(self.cool_queue, (until_ms, ip))


@dataclass
class SubnetState:
    spec: SubnetSpec
    families: dict[int, FamilyState]
    pools: dict[str, PoolSpec]


@dataclass
class Usage:
    subnet: str
    family: int
    cidr: str
    total: int
    used: int
    free: int
    excluded: int
    cooling: int
    pooled: int


class Allocator:
    """In-memory view of every subnet, pool, allocation and cooling address."""

    def __init__(self, cooldown_ms: int, *, seed: int | None = None, spread: bool = False) -> None:
        self.cooldown_ms = cooldown_ms
        self.rng = random.Random(seed)
        self.spread = spread  # random cursor start (many replicas on one store)
        self.subnets: dict[str, SubnetState] = {}
        self.owners: dict[str, AllocationRecord] = {}
        self.macs: dict[str, str] = {}

    # ---- subnets and pools -------------------------------------------------

    def subnet(self, name: str, field: str = "owner.network") -> SubnetState:
        state = self.subnets.get(name)
        if state is None:
            raise NotFound(f"no subnet {name!r}", field=field)
        return state

    def check_subnet_spec(self, spec: SubnetSpec) -> SubnetSpec:
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

    def check_overlap(self, spec: SubnetSpec) -> None:
        nets = [ipaddress.ip_network(c) for c in spec.cidrs]
        for other in self.subnets.values():
            if other.spec.name == spec.name:
                continue
            for theirs in other.families.values():
                for mine in nets:
                    if mine.version == theirs.version and mine.overlaps(theirs.net):
                        raise AlreadyExists(
                            f"{mine} overlaps {theirs.net} of subnet {other.spec.name!r}",
                            field="subnet.cidrs",
                        )

    def build(self, spec: SubnetSpec, pools: Iterable[PoolSpec]) -> SubnetState:
        """Fresh state for a (validated) spec and its pools; no allocations yet."""
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
                self.rng if self.spread else None,
            )
        return SubnetState(spec, families, pool_map)

    def offenders(self, state: SubnetState, records: Iterable[AllocationRecord]) -> list[str]:
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

    def pool_conflicts(self, state: SubnetState) -> list[str]:
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

    def install(self, state: SubnetState) -> None:
        """Put a built state in place, carrying over used and cooling addresses."""
        old = self.subnets.get(state.spec.name)
        self.subnets[state.spec.name] = state
        if old is None:
            return
        for version, fam in old.families.items():
            new = state.families.get(version)
            if new is None:
                continue
            for ip, key in fam.used.items():
                new.mark_used(ip, key)
            for ip, (until, prev) in fam.cooling.items():
                if ip not in new.used:
                    new.add_cooling(ip, until, prev)

    def resume_cursors(self) -> None:
        """After loading allocations: walk fresh addresses above the highest used one.

        Allocations made before a restart sit mostly low in each space (the
        cursor went upwards); starting above them spares the first new
        allocation from stepping over all of them at once.
        """
        if self.spread:
            return
        for state in self.subnets.values():
            for fam in state.families.values():
                for space in (fam.general, *fam.pools.values()):
                    top = max((ip for ip in fam.used if space.contains(ip)), default=None)
                    if top is not None:
                        space.start_after(top)

    def remove_subnet(self, name: str) -> None:
        self.subnets.pop(name, None)

    def check_pool(self, pool: PoolSpec) -> PoolSpec:
        state = self.subnet(pool.subnet, "pool.subnet")
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
                    f"{fam.text(blocked[0][0])} is a network, broadcast, gateway or "
                    "excluded address",
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

    # ---- allocations -------------------------------------------------------

    def reserve(
        self,
        owner: Owner,
        *,
        ips: Sequence[str] = (),
        mac: str = "",
        pool: str = "",
        families: Sequence[int] = (),
        pod_uid: str = "",
        container_id: str = "",
        now_ms: int,
    ) -> AllocationRecord:
        """Pick addresses and a MAC for a new owner and mark them held in memory."""
        state = self.subnet(owner.network)
        fixed = self._fixed(state, owner, ips, pool, now_ms)
        wanted = self._families(state, families, fixed, pool)
        if mac:
            mac = A.parse_mac(mac, "mac")
            holder = self.macs.get(mac)
            if holder is not None and holder != owner.key:
                raise AlreadyExists(f"{mac} is held by {holder}", field="mac")
        else:
            mac = A.random_mac(self.rng)
            while mac in self.macs:
                mac = A.random_mac(self.rng)
        chosen: dict[int, int] = {}
        for version in wanted:
            if version in fixed:
                chosen[version] = fixed[version]
                continue
            fam = state.families[version]
            fam.expire(now_ms)
            space = fam.pools[pool] if pool else fam.general
            ip = space.take(fam.busy)
            if ip is None:
                for v, taken in chosen.items():  # give back what the other family took
                    if v not in fixed:
                        state.families[v].unmark(taken, None, "")
                where = (
                    f"pool {pool!r} of subnet {owner.network!r}"
                    if pool
                    else f"subnet {owner.network!r}"
                )
                raise ResourceExhausted(
                    f"{where} has no free {FAMILY_NAME[version]} address "
                    f"({space.used} used, {space.cooling} cooling down)",
                    field="pool" if pool else "owner.network",
                )
            chosen[version] = ip
            fam.mark_used(ip, owner.key)
        for version, ip in fixed.items():
            state.families[version].mark_used(ip, owner.key)
        self.macs[mac] = owner.key
        return AllocationRecord(
            owner,
            [state.families[v].text(chosen[v]) for v in wanted],
            mac,
            pod_uid,
            container_id,
            pool,
            now_ms,
        )

    def _fixed(
        self, state: SubnetState, owner: Owner, ips: Sequence[str], pool: str, now_ms: int
    ) -> dict[int, int]:
        if pool and pool not in state.pools:
            raise NotFound(f"no pool {pool!r} in subnet {state.spec.name!r}", field="pool")
        fixed: dict[int, int] = {}
        for text in ips:
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

    def _families(
        self, state: SubnetState, families: Sequence[int], fixed: dict[int, int], pool: str
    ) -> list[int]:
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
                    raise InvalidArgument(
                        f"pool {pool!r} has no IPv{v} addresses", field="families"
                    )
        return wanted

    def unreserve(self, rec: AllocationRecord) -> None:
        """Undo `reserve` after the store refused or failed: nothing was held."""
        state = self.subnets.get(rec.owner.network)
        if state is not None:
            for text in rec.ips:
                version, ip = A.stored_ip(text)
                fam = state.families.get(version)
                if fam is not None and fam.used.get(ip) == rec.owner.key:
                    fam.unmark(ip, None, "")
        if self.macs.get(rec.mac) == rec.owner.key and rec.owner.key not in self.owners:
            del self.macs[rec.mac]

    def confirm(self, rec: AllocationRecord) -> None:
        """The store accepted what `reserve` returned: its marks are already in place."""
        self.owners[rec.owner.key] = rec
        self.macs[rec.mac] = rec.owner.key

    def commit(self, rec: AllocationRecord) -> None:
        """The store has the record: it is now an allocation (also used for replay)."""
        old = self.owners.get(rec.owner.key)
        if old is not None and not old.same_content(rec):
            self.forget(old, cool=False)
        self.owners[rec.owner.key] = rec
        self.macs[rec.mac] = rec.owner.key
        state = self.subnets.get(rec.owner.network)
        if state is None:
            return
        for text in rec.ips:
            version, ip = A.stored_ip(text)
            fam = state.families.get(version)
            if fam is not None:
                fam.mark_used(ip, rec.owner.key)

    def mark_foreign(self, network: str, ip_text: str, holder: str) -> None:
        """Another replica holds this address; its record arrives later by watch."""
        state = self.subnets.get(network)
        if state is None:
            return
        version, ip = A.stored_ip(ip_text)
        fam = state.families.get(version)
        if fam is not None:
            fam.mark_used(ip, holder)

    def check_compatible(
        self,
        rec: AllocationRecord,
        *,
        ips: Sequence[str],
        mac: str,
        pool: str,
        families: Sequence[int],
    ) -> None:
        """A repeated Allocate must ask for what the owner already has."""
        held = {ipaddress.ip_address(t) for t in rec.ips}
        for text in ips:
            if A.parse_ip(text, "ips") not in held:
                raise FailedPrecondition(
                    f"{rec.owner.key} already holds {', '.join(rec.ips)}, not {text}; "
                    "release it first",
                    field="ips",
                )
        if mac and A.parse_mac(mac, "mac") != rec.mac:
            raise FailedPrecondition(
                f"{rec.owner.key} already holds MAC {rec.mac}, not {mac}", field="mac"
            )
        if pool and pool != rec.pool:
            raise FailedPrecondition(
                f"{rec.owner.key} was allocated from pool {rec.pool!r}, not {pool!r}", field="pool"
            )
        have = {ip.version for ip in held}
        missing = [v for v in families if v not in have]
        if missing:
            raise FailedPrecondition(
                f"{rec.owner.key} holds no IPv{missing[0]} address ({', '.join(rec.ips)})",
                field="families",
            )

    def forget(self, rec: AllocationRecord, *, cool: bool, now_ms: int = 0) -> list[Cooling]:
        """Drop an allocation from memory; returns the cool-downs it starts."""
        if self.owners.get(rec.owner.key) is rec or (
            rec.owner.key in self.owners and self.owners[rec.owner.key].same_content(rec)
        ):
            del self.owners[rec.owner.key]
        if self.macs.get(rec.mac) == rec.owner.key:
            del self.macs[rec.mac]
        cooled: list[Cooling] = []
        state = self.subnets.get(rec.owner.network)
        until = now_ms + self.cooldown_ms if cool and self.cooldown_ms > 0 else None
        for text in rec.ips:
            version, ip = A.stored_ip(text)
            fam = state.families.get(version) if state else None
            if fam is None or fam.used.get(ip) != rec.owner.key:
                continue
            fam.unmark(ip, until, rec.owner.key)
            if until is not None:
                cooled.append(Cooling(rec.owner.network, text, until, rec.owner.key))
        return cooled

    def apply_cooling(self, c: Cooling) -> None:
        state = self.subnets.get(c.subnet)
        if state is None:
            return
        version, ip = A.stored_ip(c.ip)
        fam = state.families.get(version)
        if fam is not None and ip not in fam.used:
            fam.add_cooling(ip, c.until_ms, c.previous_owner)

    def holder_of(self, subnet: str, ip_text: str) -> str | None:
        state = self.subnet(subnet, "subnet")
        ip = A.parse_ip(ip_text, "ip")
        fam = state.families.get(ip.version)
        return fam.used.get(int(ip)) if fam else None

    def usage(self, name: str, now_ms: int | None) -> list[Usage]:
        """Counts per family. now_ms=None: read only (from another thread, e.g.
        a metrics scrape), so cool-downs that ended are still counted as
        cooling until the event loop next expires them."""
        state = self.subnet(name, "subnet")
        out = []
        for version, fam in list(state.families.items()):
            if now_ms is not None:
                fam.expire(now_ms)
            out.append(
                Usage(
                    name,
                    version,
                    str(fam.net),
                    fam.net.num_addresses,
                    len(fam.used),
                    fam.general.free,
                    A.size(fam.blocked),
                    len(fam.cooling),
                    sum(space.size for space in list(fam.pools.values())),
                )
            )
        return out


def describe(bad: list[str]) -> str:
    more = f" and {len(bad) - _SHOW} more" if len(bad) > _SHOW else ""
    return "; ".join(bad[:_SHOW]) + more
