"""Where free addresses are found fast: one CIDR's address spaces and their marks.

A subnet may be a /8: finding a free address must not mean scanning it, and
a released address must not be reused before its cool-down ends even when
cool-downs arrive out of order. These structures keep, per family, the
allowed addresses as intervals (CIDR minus network, broadcast, gateway and
exclusions; each pool a space of its own), a cursor over addresses never
handed out, a pile of recycled ones and a heap of cooling ones, so that
picking, marking and expiring are all cheap. They are rebuilt from the
store's records at start; the allocator decides what to do with them.
"""

from __future__ import annotations

import heapq
import random
from bisect import bisect_right
from collections.abc import Callable

from services.ipam import addresses as A


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
