"""The records cluster DNS answers, from Services and EndpointSlices (pure).

The rules are those of the Kubernetes DNS-based service discovery
specification as CoreDNS's kubernetes plugin implements them:

- `<svc>.<ns>.svc.<zone>` A/AAAA: the Service's ClusterIP(s); for a headless
  Service (clusterIP None) the addresses of its ready endpoints (none ready:
  no record, so NXDOMAIN); an ExternalName Service is a CNAME to its name.
- `<hostname>.<svc>.<ns>.svc.<zone>` A/AAAA for each ready endpoint, where
  hostname is the endpoint's `hostname`, else its address with dots (or
  colons) as dashes, as CoreDNS names it.
- `_<port>._<proto>.<svc>.<ns>.svc.<zone>` SRV for each named port: to the
  Service name (ClusterIP, the Service's port) or to each ready endpoint's
  name (headless, the endpoint's port); priority 0, weight 100 shared out.
- PTR: a ClusterIP to its Service name, an endpoint address to its endpoint
  name (the first name of a hosts line is its PTR in dnsmasq).

An endpoint is ready unless `conditions.ready` is false (unset means ready,
as the EndpointSlice API says). Slices are tied to their Service by the
`kubernetes.io/service-name` label; slices of unknown Services and FQDN
slices give nothing. Names the API would not have let through (or that would
break dnsmasq's configuration syntax) are skipped, and a loop of ExternalName
Services is dropped rather than handed to dnsmasq, which refuses to start on
one.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
DEFAULT_ZONE = "cluster.local"
#: The schema version the specification asks `dns-version.<zone>` TXT to carry.
SCHEMA_VERSION = "1.1.0"

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def is_label(name: str) -> bool:
    return bool(_LABEL.match(name))


def is_domain(name: str) -> bool:
    labels = name.split(".")
    return 0 < len(name) <= 253 and all(is_label(x) for x in labels)


def dashed(ip: str) -> str:
    """CoreDNS's name for an endpoint without hostname: 10.0.0.5 -> 10-0-0-5."""
    name = ip.replace(":", "-").replace(".", "-")
    # A label may not start or end with '-' (::1 -> 0--1, as dnsmasq does it).
    if name.startswith("-"):
        name = "0" + name
    if name.endswith("-"):
        name += "0"
    return name


@dataclass(frozen=True, order=True)
class Srv:
    name: str
    target: str
    port: int
    priority: int = 0
    weight: int = 100


@dataclass(frozen=True)
class Zone:
    """Everything dnsmasq serves for the cluster zone."""

    #: address -> names, first name first (it is the address's PTR)
    hosts: tuple[tuple[str, tuple[str, ...]], ...] = ()
    srv: tuple[Srv, ...] = ()
    #: alias -> target
    cnames: tuple[tuple[str, str], ...] = ()

    def hosts_text(self) -> str:
        """The hosts file dnsmasq reads A/AAAA/PTR from (`--hostsdir`)."""
        return "".join(f"{ip} {' '.join(names)}\n" for ip, names in self.hosts)

    def config_lines(self, ttl: int) -> list[str]:
        """What only dnsmasq's configuration can carry: SRV and CNAME."""
        lines = [f"srv-host={s.name},{s.target},{s.port},{s.priority},{s.weight}" for s in self.srv]
        lines += [f"cname={alias},{target},{ttl}" for alias, target in self.cnames]
        return lines

    def names(self) -> set[str]:
        """Every owner name (tests and status)."""
        out = {n for _, names in self.hosts for n in names}
        return out | {s.name for s in self.srv} | {a for a, _ in self.cnames}


@dataclass
class _Builder:
    zone: str
    hosts: dict[str, list[str]] = field(default_factory=dict)
    srv: set[Srv] = field(default_factory=set)
    cnames: dict[str, str] = field(default_factory=dict)

    def host(self, ip: str, name: str) -> None:
        names = self.hosts.setdefault(ip, [])
        if name not in names:
            names.append(name)


def _key(obj: Obj) -> tuple[str, str]:
    md = obj.get("metadata") or {}
    return str(md.get("namespace") or ""), str(md.get("name") or "")


def _ip(value: Any) -> str | None:
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        return None


def _ready(endpoint: Obj) -> bool:
    return (endpoint.get("conditions") or {}).get("ready") is not False


def _cluster_ips(spec: Obj) -> list[str]:
    raw = spec.get("clusterIPs") or [spec.get("clusterIP")]
    return [ip for ip in (_ip(x) for x in raw if x not in (None, "", "None")) if ip]


def _is_headless(spec: Obj) -> bool:
    return spec.get("clusterIP") == "None" or (spec.get("clusterIPs") or [None])[0] == "None"


def _port_name(port: Obj) -> tuple[str, str] | None:
    """(name, proto) of a port worth an SRV record, else None (unnamed ports have none)."""
    name = str(port.get("name") or "").lower()
    proto = str(port.get("protocol") or "TCP").lower()
    if not is_label(name) or proto not in ("tcp", "udp", "sctp"):
        return None
    return name, proto


def _endpoints(slices: Iterable[Obj]) -> dict[tuple[str, str], list[Obj]]:
    by_service: dict[tuple[str, str], list[Obj]] = {}
    for s in slices:
        md = s.get("metadata") or {}
        svc = (md.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if not svc or s.get("addressType") not in ("IPv4", "IPv6"):
            continue
        by_service.setdefault((str(md.get("namespace") or ""), str(svc)), []).append(s)
    return by_service


def build(services: Iterable[Obj], slices: Iterable[Obj], zone: str = DEFAULT_ZONE) -> Zone:
    """The records for these Services and EndpointSlices (any order, any duplicates)."""
    b = _Builder(zone)
    by_service = _endpoints(slices)
    for svc in sorted(services, key=_key):
        ns, name = _key(svc)
        if not (is_label(ns) and is_label(name)):
            continue
        _service(b, svc, f"{name}.{ns}.svc.{zone}", by_service.get((ns, name), []))
    return _finish(b)


def _service(b: _Builder, svc: Obj, fqdn: str, slices: list[Obj]) -> None:
    spec = svc.get("spec") or {}
    if spec.get("type") == "ExternalName":
        target = str(spec.get("externalName") or "").rstrip(".").lower()
        if is_domain(target) and target != fqdn:
            b.cnames[fqdn] = target
        return
    headless = _is_headless(spec)
    if not headless:
        for ip in _cluster_ips(spec):
            b.host(ip, fqdn)
        for port in spec.get("ports") or []:
            named = _port_name(port)
            if named and isinstance(port.get("port"), int):
                b.srv.add(Srv(f"_{named[0]}._{named[1]}.{fqdn}", fqdn, port["port"]))
    for s in sorted(slices, key=_key):
        ports = [(p, n) for p in s.get("ports") or [] if (n := _port_name(p))]
        for ep in s.get("endpoints") or []:
            if not _ready(ep):
                continue
            hostname = str(ep.get("hostname") or "").lower()
            for ip in filter(None, (_ip(raw) for raw in ep.get("addresses") or [])):
                host = hostname if is_label(hostname) else dashed(ip)
                ep_name = f"{host}.{fqdn}"
                b.host(ip, ep_name)
                if not headless:
                    continue
                b.host(ip, fqdn)
                for p, (pname, proto) in ports:
                    if isinstance(p.get("port"), int):
                        b.srv.add(Srv(f"_{pname}._{proto}.{fqdn}", ep_name, p["port"]))


def _finish(b: _Builder) -> Zone:
    per_name: dict[str, list[Srv]] = {}
    for s in sorted(b.srv):
        per_name.setdefault(s.name, []).append(s)
    srv = tuple(
        Srv(s.name, s.target, s.port, 0, max(1, 100 // len(group)))
        for group in per_name.values()
        for s in group
    )
    hosts = tuple((ip, tuple(names)) for ip, names in b.hosts.items())
    taken = {n for _, names in hosts for n in names}
    cnames = {a: t for a, t in b.cnames.items() if a not in taken}
    return Zone(hosts=hosts, srv=srv, cnames=tuple(sorted(_without_loops(cnames).items())))


def _without_loops(cnames: dict[str, str]) -> dict[str, str]:
    """Drop every alias whose chain of CNAMEs comes back to a name already on it."""
    keep: dict[str, str] = {}
    for alias in cnames:
        seen = {alias}
        cur = cnames[alias]
        while cur in cnames and cur not in seen:
            seen.add(cur)
            cur = cnames[cur]
        if cur not in seen:
            keep[alias] = cnames[alias]
    return keep
