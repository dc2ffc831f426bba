"""Parse and validate `kovn.io/v1` Subnet and IPPool objects.

The CRD schema already rejects wrong types; this module checks what a
schema cannot: that CIDRs parse, at most one per family, gateways lie inside
them, excluded addresses too, and that subnets do not overlap. Errors name
the field and value so the Subnet's condition tells the user what to fix.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from services.common.errors import InvalidArgument

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

GATEWAY_TYPES = ("distributed", "centralized")


@dataclass(frozen=True)
class SubnetSpec:
    name: str
    cidrs: tuple[Network, ...]
    gateways: tuple[Address, ...]
    #: In ipam's syntax: "a", "a-b" or a CIDR.
    excludes: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    default: bool = False
    private: bool = False
    allow_subnets: tuple[str, ...] = ()
    nat_outgoing: bool = False
    gateway_type: str = "distributed"
    mtu: int = 0
    vlan: str = ""
    provider: str = ""
    #: Internal subnets (the join subnet) are never chosen for pods.
    internal: bool = False
    extra: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def cidr_strings(self) -> list[str]:
        return [str(c) for c in self.cidrs]

    @property
    def gateway_strings(self) -> list[str]:
        return [str(g) for g in self.gateways]

    def prefix_of(self, ip: str) -> int:
        addr = ipaddress.ip_address(ip)
        for cidr in self.cidrs:
            if addr in cidr:
                return cidr.prefixlen
        raise InvalidArgument(f"{ip} is not inside {self.cidr_strings}", field="ip")

    def gateway_for(self, ip: str) -> str:
        addr = ipaddress.ip_address(ip)
        for cidr, gw in zip(self.cidrs, self.gateways, strict=True):
            if addr in cidr:
                return str(gw)
        return ""


@dataclass(frozen=True)
class PoolSpec:
    name: str
    subnet: str
    addresses: tuple[str, ...]
    namespaces: tuple[str, ...] = ()


def _split(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [p.strip() for p in value.split(",") if p.strip()]
    if isinstance(value, list):
        return [str(p).strip() for p in value if str(p).strip()]
    return [str(value)]


def parse_cidrs(value: Any, fld: str = "spec.cidrBlock") -> tuple[Network, ...]:
    parts = _split(value)
    if not parts:
        raise InvalidArgument("a CIDR is required", field=fld)
    nets: list[Network] = []
    for part in parts:
        try:
            net = ipaddress.ip_network(part, strict=True)
        except ValueError as exc:
            raise InvalidArgument(f"{part!r} is not a valid CIDR ({exc})", field=fld) from None
        if any(n.version == net.version for n in nets):
            raise InvalidArgument(f"more than one IPv{net.version} CIDR in {value!r}", field=fld)
        limit = 30 if net.version == 4 else 126
        if net.prefixlen > limit:
            raise InvalidArgument(f"{part} is too small for pods", field=fld)
        nets.append(net)
    nets.sort(key=lambda n: n.version)
    return tuple(nets)


def _parse_gateways(value: Any, cidrs: tuple[Network, ...]) -> tuple[Address, ...]:
    fld = "spec.gateway"
    parts = _split(value)
    gws: list[Address] = []
    for cidr in cidrs:
        mine = []
        for part in parts:
            try:
                addr = ipaddress.ip_address(part)
            except ValueError:
                raise InvalidArgument(f"{part!r} is not an IP address", field=fld) from None
            if addr.version == cidr.version:
                mine.append(addr)
        if not mine:
            gws.append(cidr[1])
            continue
        gw = mine[0]
        if gw not in cidr or gw in (cidr.network_address, cidr.broadcast_address):
            raise InvalidArgument(f"{gw} is outside {cidr} or not a host address", field=fld)
        gws.append(gw)
    for part in parts:
        if not any(str(g) == str(ipaddress.ip_address(part)) for g in gws):
            raise InvalidArgument(f"{part} matches no CIDR of the subnet", field=fld)
    return tuple(gws)


def _parse_excludes(value: Any, cidrs: tuple[Network, ...]) -> tuple[str, ...]:
    fld = "spec.excludeIps"
    out: list[str] = []
    for i, raw in enumerate(_split(value)):
        item = raw.replace("..", "-")
        ends = item.split("-") if "/" not in item else [item]
        try:
            if "/" in item:
                first_last: list[Address] = [ipaddress.ip_network(item, strict=False)[0]]
            else:
                first_last = [ipaddress.ip_address(e) for e in ends]
        except ValueError:
            raise InvalidArgument(
                f"{raw!r} is not an IP, range or CIDR", field=f"{fld}[{i}]"
            ) from None
        if len(first_last) > 2 or (len(first_last) == 2 and first_last[0] > first_last[1]):  # type: ignore[operator]
            raise InvalidArgument(f"{raw!r} is not a valid range", field=f"{fld}[{i}]")
        for addr in first_last:
            if not any(addr in c for c in cidrs):
                raise InvalidArgument(f"{raw!r} is outside the subnet", field=f"{fld}[{i}]")
        out.append(item)
    return tuple(out)


def parse_subnet(obj: Mapping[str, Any]) -> SubnetSpec:
    """A Subnet custom resource as a validated SubnetSpec."""
    name = str(obj.get("metadata", {}).get("name", ""))
    spec = obj.get("spec") or {}
    cidrs = parse_cidrs(spec.get("cidrBlock"))
    gateways = _parse_gateways(spec.get("gateway"), cidrs)
    excludes = _parse_excludes(spec.get("excludeIps"), cidrs)
    gateway_type = str(spec.get("gatewayType") or "distributed")
    if gateway_type not in GATEWAY_TYPES:
        raise InvalidArgument(
            f"{gateway_type!r} is not one of {', '.join(GATEWAY_TYPES)}", field="spec.gatewayType"
        )
    mtu = int(spec.get("mtu") or 0)
    if mtu and not 68 <= mtu <= 65535:
        raise InvalidArgument(f"{mtu} is not between 68 and 65535", field="spec.mtu")
    if spec.get("allowSubnets") and not spec.get("private"):
        raise InvalidArgument("only a private subnet has allowSubnets", field="spec.allowSubnets")
    allow = tuple(_split(spec.get("allowSubnets")))
    for i, item in enumerate(allow):
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise InvalidArgument(
                f"{item!r} is not a CIDR", field=f"spec.allowSubnets[{i}]"
            ) from None
    return SubnetSpec(
        name=name,
        cidrs=cidrs,
        gateways=gateways,
        excludes=excludes,
        namespaces=tuple(_split(spec.get("namespaces"))),
        default=bool(spec.get("default", False)),
        private=bool(spec.get("private", False)),
        allow_subnets=allow,
        nat_outgoing=bool(spec.get("natOutgoing", False)),
        gateway_type=gateway_type,
        mtu=mtu,
        vlan=str(spec.get("vlan") or ""),
        provider=str(spec.get("provider") or ""),
    )


def overlaps(spec: SubnetSpec, others: Iterable[SubnetSpec]) -> str:
    """Name and CIDR of the first other subnet overlapping `spec` ("" if none)."""
    for other in others:
        if other.name == spec.name:
            continue
        for mine in spec.cidrs:
            for theirs in other.cidrs:
                if mine.version == theirs.version and mine.overlaps(theirs):
                    return f"{other.name} ({theirs})"
    return ""


def parse_pool(obj: Mapping[str, Any]) -> PoolSpec:
    name = str(obj.get("metadata", {}).get("name", ""))
    spec = obj.get("spec") or {}
    subnet = str(spec.get("subnet") or "")
    if not subnet:
        raise InvalidArgument("a subnet is required", field="spec.subnet")
    ips = tuple(i.replace("..", "-") for i in _split(spec.get("ips")))
    if not ips:
        raise InvalidArgument("at least one IP, range or CIDR is required", field="spec.ips")
    return PoolSpec(
        name=name, subnet=subnet, addresses=ips, namespaces=tuple(_split(spec.get("namespaces")))
    )


def internal_subnet(name: str, cidr: str) -> SubnetSpec:
    """The default or join subnet created from configuration."""
    cidrs = parse_cidrs(cidr, fld=name)
    return SubnetSpec(
        name=name,
        cidrs=cidrs,
        gateways=tuple(c[1] for c in cidrs),
    )
