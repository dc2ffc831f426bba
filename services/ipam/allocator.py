"""The allocator: which address and MAC a new owner gets, as pure logic.

The store owns the truth, but asking it for every choice would cost a round
trip per candidate address. The allocator keeps, per subnet and family, an
in-memory view (see spaces.py) built from the store's records at start, so
that choosing a free address is cheap; a stale choice (another replica took
the address) only costs a retry.

Nothing here does I/O: `reserve` picks and marks addresses in memory, the
caller commits the record to the store and then calls `confirm` or
`unreserve`.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

from services.common.errors import AlreadyExists, NotFound, ResourceExhausted
from services.ipam import addresses as A
from services.ipam.model import AllocationRecord, Cooling, PoolSpec, SubnetSpec
from services.ipam.request import AllocationRequest, fixed_addresses, wanted_families
from services.ipam.subnets import SubnetState, build


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

    def build(self, spec: SubnetSpec, pools: Iterable[PoolSpec]) -> SubnetState:
        """Fresh state for a (validated) spec and its pools; no allocations yet."""
        return build(spec, pools, self.rng if self.spread else None)

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

    # ---- allocations -------------------------------------------------------

    def reserve(self, req: AllocationRequest, *, now_ms: int) -> AllocationRecord:
        """Pick addresses and a MAC for a new owner and mark them held in memory."""
        owner, pool = req.owner, req.pool
        state = self.subnet(owner.network)
        fixed = fixed_addresses(state, req, now_ms)
        wanted = wanted_families(state, req, fixed)
        mac = self._mac(req)
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
                    f"{where} has no free {A.FAMILY_NAME[version]} address "
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
            req.pod_uid,
            req.container_id,
            pool,
            now_ms,
        )

    def _mac(self, req: AllocationRequest) -> str:
        """The requested MAC if nobody else holds it, else a fresh random one."""
        if req.mac:
            mac = A.parse_mac(req.mac, "mac")
            holder = self.macs.get(mac)
            if holder is not None and holder != req.owner.key:
                raise AlreadyExists(f"{mac} is held by {holder}", field="mac")
            return mac
        mac = A.random_mac(self.rng)
        while mac in self.macs:
            mac = A.random_mac(self.rng)
        return mac

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
