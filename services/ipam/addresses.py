"""Parsing of CIDRs, IPs, ranges and MACs, and sets of addresses as intervals.

Every piece of user input that names addresses passes through here, so that
a bad value is refused in one place with the field and value named. Address
sets (excluded ranges, pools) are kept as sorted, disjoint inclusive integer
intervals: a /8 exclusion costs one tuple, not sixteen million entries.
"""

from __future__ import annotations

import ipaddress
import random
import re
import socket
from bisect import bisect_right
from collections.abc import Iterable, Sequence

from services.common.errors import InvalidArgument

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Interval = tuple[int, int]

# Smallest subnets that still leave an allocatable address after the
# network, broadcast (v4) and gateway addresses are taken out.
MAX_PREFIX = {4: 30, 6: 126}
FAMILY_NAME = {4: "IPv4", 6: "IPv6"}

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def parse_cidr(value: str, field: str) -> IPNetwork:
    """A CIDR in canonical form; host bits set is an error, not a silent fix."""
    try:
        net = ipaddress.ip_network(value.strip(), strict=True)
    except ValueError as err:
        raise InvalidArgument(f"{value!r} is not a valid CIDR ({err})", field=field) from None
    if net.prefixlen > MAX_PREFIX[net.version]:
        raise InvalidArgument(
            f"{value!r} is too small: IPv{net.version} prefixes longer than "
            f"/{MAX_PREFIX[net.version]} leave no allocatable address",
            field=field,
        )
    return net


def parse_ip(value: str, field: str) -> IPAddress:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        raise InvalidArgument(f"{value!r} is not a valid IP address", field=field) from None


def parse_ranges(values: Iterable[str], field: str) -> dict[int, list[Interval]]:
    """Parse "ip", "ip-ip" and CIDR entries into normalised intervals per family."""
    out: dict[int, list[Interval]] = {4: [], 6: []}
    for value in values:
        text = value.strip()
        if "-" in text:
            lo_text, _, hi_text = text.partition("-")
            lo, hi = parse_ip(lo_text, field), parse_ip(hi_text, field)
            if lo.version != hi.version:
                raise InvalidArgument(f"{value!r} mixes IPv4 and IPv6", field=field)
            if int(lo) > int(hi):
                raise InvalidArgument(f"{value!r}: range start is after its end", field=field)
            out[lo.version].append((int(lo), int(hi)))
        elif "/" in text:
            try:
                net = ipaddress.ip_network(text, strict=True)
            except ValueError as err:
                raise InvalidArgument(
                    f"{value!r} is not a valid CIDR ({err})", field=field
                ) from None
            out[net.version].append((int(net.network_address), int(net.broadcast_address)))
        else:
            ip = parse_ip(text, field)
            out[ip.version].append((int(ip), int(ip)))
    return {family: normalise(intervals) for family, intervals in out.items()}


def normalise(intervals: Iterable[Interval]) -> list[Interval]:
    """Sort and merge overlapping or adjacent intervals."""
    merged: list[Interval] = []
    for lo, hi in sorted(intervals):
        if merged and lo <= merged[-1][1] + 1:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return merged


def subtract(base: Sequence[Interval], remove: Sequence[Interval]) -> list[Interval]:
    """base minus remove; both normalised."""
    out: list[Interval] = []
    j = 0
    for lo, hi in base:
        cur = lo
        while j < len(remove) and remove[j][1] < cur:
            j += 1
        k = j
        while k < len(remove) and remove[k][0] <= hi:
            rlo, rhi = remove[k]
            if rlo > cur:
                out.append((cur, rlo - 1))
            cur = max(cur, rhi + 1)
            if cur > hi:
                break
            k += 1
        if cur <= hi:
            out.append((cur, hi))
    return out


def intersect(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def size(intervals: Sequence[Interval]) -> int:
    return sum(hi - lo + 1 for lo, hi in intervals)


def contains(intervals: Sequence[Interval], starts: Sequence[int], value: int) -> bool:
    """Membership by bisection; `starts` is [lo for lo, _ in intervals]."""
    i = bisect_right(starts, value) - 1
    return i >= 0 and value <= intervals[i][1]


def stored_ip(text: str) -> tuple[int, int]:
    """(family, integer) of an address text kovn wrote itself (records, watch events).

    inet_pton is strict and an order of magnitude cheaper than ipaddress;
    this runs for every allocation a replica learns of.
    """
    if ":" in text:
        return 6, int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
    return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")


def ip_text(version: int, value: int) -> str:
    return str(ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value))


def parse_mac(value: str, field: str) -> str:
    """A requested MAC, normalised to lower case; multicast and zero refused."""
    mac = value.strip().lower().replace("-", ":")
    if not _MAC.match(mac):
        raise InvalidArgument(f"{value!r} is not a MAC address (aa:bb:cc:dd:ee:ff)", field=field)
    first = int(mac[:2], 16)
    if first & 1:
        raise InvalidArgument(f"{value!r} is a multicast MAC", field=field)
    if mac == "00:00:00:00:00:00":
        raise InvalidArgument(f"{value!r} is the zero MAC", field=field)
    return mac


def random_mac(rng: random.Random) -> str:
    """A random locally administered unicast MAC (bit 1 set, bit 0 clear)."""
    octets = rng.getrandbits(48).to_bytes(6, "big")
    first = (octets[0] & 0xFC) | 0x02
    return ":".join(f"{b:02x}" for b in (first, *octets[1:]))
