"""NetworkPolicy as OVN rows: a port group, peer address sets, ACLs.

Pure functions. `parse_policy` reads a `networking.k8s.io/v1` NetworkPolicy
the way the API documents it (and applies the documented defaults itself:
`policyTypes` is Ingress, plus Egress when egress rules are present; a
port's protocol is TCP), collecting what kovn cannot enforce as problems.
`policy_rows` turns a parsed policy, with the pods it selects and its
peers resolved by the caller, into rows:

- one Port_Group holding the selected pods' ports and every ACL;
- per policy type, a default-deny ACL (`NETPOL_DROP_PRIORITY`) and an
  allow-related ACL for the join subnet (node <-> pod: kubelet probes, the
  node-local DNS), so isolation never cuts kovn's own paths;
- per rule and port, an allow-related ACL one priority above every deny:
  policies are additive (any allow wins) and conntrack lets replies back;
- egress ACLs are applied after the load balancers (`apply-after-lb`), so
  traffic to a ClusterIP is judged by its backend, as to-lport ACLs see the
  DNATed destination of ingress traffic.

Peers selected by labels are Address_Sets (`peer_set_rows`), one per peer
selector and family, shared by every policy naming the same peers. ipBlocks
are inlined. Named ports are resolved per pod: for ingress from the selected
pods' containerPorts (one ACL per distinct number, limited to the pods that
have it), for egress from the peer pods' (one ACL per number, listing the
peers that have it).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.controller.nb.rows import DesiredRow
from services.controller.nb.tables import ColumnValue
from services.controller.selectors import (
    EVERYTHING,
    Requirement,
    Selector,
    SelectorError,
    parse_selector,
)
from services.controller.topology import names

PROTOCOLS = ("TCP", "UDP", "SCTP")
INGRESS, EGRESS = "Ingress", "Egress"

_SPEC_FIELDS = {"podSelector", "policyTypes", "ingress", "egress"}
_RULE_FIELDS = {INGRESS: {"from", "ports"}, EGRESS: {"to", "ports"}}
_PEER_FIELDS = {"podSelector", "namespaceSelector", "ipBlock"}
_PORT_FIELDS = {"protocol", "port", "endPort"}


@dataclass(frozen=True, order=True)
class PeerSelector:
    """Pods chosen by labels: in `namespace` when `namespaces` is None
    (a peer without namespaceSelector), else in the namespaces it selects."""

    namespace: str
    namespaces: Selector | None
    pods: Selector

    @property
    def key(self) -> str:
        """Canonical text: the shared address set's identity."""
        ns = f"ns({self.namespaces.canonical()})" if self.namespaces is not None else self.namespace
        return f"{ns}|pods({self.pods.canonical()})"

    def namespace_matches(self, namespace: str, ns_labels: dict[str, str] | None) -> bool:
        if self.namespaces is None:
            return namespace == self.namespace
        return self.namespaces.matches(ns_labels)

    def matches(
        self, namespace: str, labels: dict[str, str] | None, ns_labels: dict[str, str] | None
    ) -> bool:
        return self.namespace_matches(namespace, ns_labels) and self.pods.matches(labels)


@dataclass(frozen=True)
class IPBlock:
    cidr: ipaddress.IPv4Network | ipaddress.IPv6Network
    excepts: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()


Peer = PeerSelector | IPBlock


@dataclass(frozen=True)
class PortSpec:
    protocol: str
    #: A number, a containerPort name, or None (every port of the protocol).
    port: int | str | None = None
    end_port: int | None = None


@dataclass(frozen=True)
class Rule:
    #: None: every peer (`from`/`to` absent or empty).
    peers: tuple[Peer, ...] | None
    #: Empty: every port and protocol.
    ports: tuple[PortSpec, ...] = ()


@dataclass(frozen=True)
class Policy:
    namespace: str
    name: str
    pods: Selector
    #: None: the policy does not isolate that direction (not in policyTypes).
    ingress: tuple[Rule, ...] | None
    egress: tuple[Rule, ...] | None
    problems: tuple[str, ...] = ()

    def peers(self) -> set[PeerSelector]:
        """The label-selected peers of every rule (the shared address sets)."""
        found: set[PeerSelector] = set()
        for rules in (self.ingress or (), self.egress or ()):
            for rule in rules:
                found.update(p for p in rule.peers or () if isinstance(p, PeerSelector))
        return found

    def named_ports(self, direction: str) -> bool:
        rules = self.ingress if direction == INGRESS else self.egress
        return any(isinstance(p.port, str) for r in rules or () for p in r.ports)


@dataclass(frozen=True)
class PodInfo:
    """What a policy needs to know about one pod."""

    namespace: str
    name: str
    port: str  # its logical switch port
    ips: tuple[str, ...]
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    #: (name, protocol, number) of its containers' named ports.
    named: tuple[tuple[str, str, int], ...] = ()

    def resolve(self, name: str, protocol: str) -> set[int]:
        return {n for pname, proto, n in self.named if pname == name and proto == protocol}


# -- parsing ---------------------------------------------------------------------


def parse_policy(obj: dict[str, Any]) -> Policy:
    meta = obj.get("metadata") or {}
    namespace, name = str(meta.get("namespace") or "default"), str(meta.get("name"))
    spec = obj.get("spec") or {}
    problems: list[str] = []
    for f in sorted(set(spec) - _SPEC_FIELDS):
        problems.append(f"spec.{f} is not supported (ignored)")
    try:
        pods = parse_selector(spec.get("podSelector") or {})
    except SelectorError as exc:
        # Fail closed: a selector kovn cannot read selects nothing.
        problems.append(f"spec.podSelector: {exc}; the policy selects no pod")
        return Policy(namespace, name, Selector((_NEVER,)), None, None, tuple(problems))
    ingress_raw, egress_raw = spec.get("ingress"), spec.get("egress")
    types = spec.get("policyTypes")
    if not types:  # the documented default
        types = [INGRESS, EGRESS] if egress_raw else [INGRESS]
    ingress = egress = None
    if INGRESS in types:
        ingress = _rules(namespace, ingress_raw, INGRESS, problems)
    if EGRESS in types:
        egress = _rules(namespace, egress_raw, EGRESS, problems)
    for t in types:
        if t not in (INGRESS, EGRESS):
            problems.append(f"spec.policyTypes: unknown type {t!r} (ignored)")
    return Policy(namespace, name, pods, ingress, egress, tuple(problems))


#: What an unreadable podSelector becomes: a label no pod is given.
_NEVER = Requirement("policy.kovn.io/unreadable-selector", "Exists")


def _rules(namespace: str, raw: Any, direction: str, problems: list[str]) -> tuple[Rule, ...]:
    peers_key = "from" if direction == INGRESS else "to"
    where = direction.lower()
    rules: list[Rule] = []
    for i, rule in enumerate(raw or []):
        base = f"spec.{where}[{i}]"
        if not isinstance(rule, dict):
            problems.append(f"{base}: not an object (rule ignored)")
            continue
        for f in sorted(set(rule) - _RULE_FIELDS[direction]):
            problems.append(f"{base}.{f} is not supported (ignored)")
        ok = True
        ports: list[PortSpec] = []
        for j, port in enumerate(rule.get("ports") or []):
            parsed = _port(port, f"{base}.ports[{j}]", problems)
            if parsed is None:
                ok = False  # fail closed: a port kovn cannot read drops the rule
            else:
                ports.append(parsed)
        raw_peers = rule.get(peers_key) or []
        peers: list[Peer] = []
        for j, peer in enumerate(raw_peers):
            p = _peer(namespace, peer, f"{base}.{peers_key}[{j}]", problems)
            if p is not None:
                peers.append(p)
        if raw_peers and not peers:
            ok = False  # every peer unreadable: allowing all would fail open
        if ok:
            rules.append(Rule(tuple(peers) if raw_peers else None, tuple(ports)))
    return tuple(rules)


def _port(raw: Any, where: str, problems: list[str]) -> PortSpec | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: not an object (rule ignored)")
        return None
    for f in sorted(set(raw) - _PORT_FIELDS):
        problems.append(f"{where}.{f} is not supported (ignored)")
    proto = str(raw.get("protocol") or "TCP")
    if proto not in PROTOCOLS:
        problems.append(f"{where}.protocol {proto!r} is not supported (rule ignored)")
        return None
    port = raw.get("port")
    end = raw.get("endPort")
    if port is None:
        return PortSpec(proto)
    if isinstance(port, str) and not port.isdigit():
        if end is not None:
            problems.append(f"{where}.endPort needs a numeric port (rule ignored)")
            return None
        return PortSpec(proto, port)
    number = int(port)
    if not 1 <= number <= 65535 or (end is not None and not number <= int(end) <= 65535):
        problems.append(f"{where}: port {port}-{end} out of range (rule ignored)")
        return None
    return PortSpec(proto, number, int(end) if end is not None else None)


def _peer(namespace: str, raw: Any, where: str, problems: list[str]) -> Peer | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: not an object (peer ignored)")
        return None
    for f in sorted(set(raw) - _PEER_FIELDS):
        problems.append(f"{where}.{f} is not supported (peer ignored)")
        return None
    block = raw.get("ipBlock")
    if block is not None:
        try:
            cidr = ipaddress.ip_network(str(block.get("cidr")), strict=False)
            excepts = tuple(
                ipaddress.ip_network(str(e), strict=False) for e in block.get("except") or []
            )
        except (ValueError, AttributeError) as exc:
            problems.append(f"{where}.ipBlock: {exc} (peer ignored)")
            return None
        return IPBlock(cidr, tuple(e for e in excepts if e.version == cidr.version))
    try:
        pods = parse_selector(raw["podSelector"]) if "podSelector" in raw else EVERYTHING
        nss = raw.get("namespaceSelector")
        ns_sel = parse_selector(nss) if "namespaceSelector" in raw else None
    except SelectorError as exc:
        problems.append(f"{where}: {exc} (peer ignored)")
        return None
    if "podSelector" not in raw and ns_sel is None:
        problems.append(f"{where}: a peer needs a selector or an ipBlock (peer ignored)")
        return None
    return PeerSelector("" if ns_sel is not None else namespace, ns_sel, pods)


# -- rows -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LogSpec:
    """ACL logging of a policy's drops (`kovn.io/enforcement-log`)."""

    severity: str = "warning"
    meter: str = names.NETPOL_METER


def peer_set_rows(peer: str, ips: Iterable[str]) -> list[DesiredRow]:
    """A peer selector's address sets, one per family, owned by the peer."""
    owner = names.netpol_peer_owner(peer)
    v4 = sorted({ip for ip in ips if ":" not in ip})
    v6 = sorted({ip for ip in ips if ":" in ip})
    return [
        DesiredRow("Address_Set", names.netpol_peer_set(peer, 4), owner, {"addresses": v4},
                   labels={"kovn-peer": peer[:200]}),
        DesiredRow("Address_Set", names.netpol_peer_set(peer, 6), owner, {"addresses": v6},
                   labels={"kovn-peer": peer[:200]}),
    ]  # fmt: skip


#: Logged drops per second (and burst) the meter lets through to ovn-controller.
LOG_RATE = 20
LOG_BURST = 100


def meter_rows() -> list[DesiredRow]:
    """The Meter every logged NetworkPolicy drop ACL names."""
    owner = names.netpol_meter_owner()
    band = f"{names.NETPOL_METER}/drop"
    return [
        DesiredRow(
            "Meter_Band",
            band,
            owner,
            {"action": "drop", "rate": LOG_RATE, "burst_size": LOG_BURST},
        ),
        DesiredRow("Meter", names.NETPOL_METER, owner, {"unit": "pktps", "bands": [band]}),
    ]


def _quote(port: str) -> str:
    return '"' + port.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _addr_match(side: str, ips: Iterable[str]) -> str:
    """`(ip4.src == {...} || ip6.src == {...})` for a literal list of IPs."""
    v4 = sorted({ip for ip in ips if ":" not in ip})
    v6 = sorted({ip for ip in ips if ":" in ip})
    terms = []
    if v4:
        terms.append(f"ip4.{side} == {{{', '.join(v4)}}}")
    if v6:
        terms.append(f"ip6.{side} == {{{', '.join(v6)}}}")
    if not terms:
        return ""
    return terms[0] if len(terms) == 1 else f"({' || '.join(terms)})"


def _peer_match(peer: Peer, side: str) -> str:
    if isinstance(peer, IPBlock):
        fam = f"ip{peer.cidr.version}"
        m = f"{fam}.{side} == {peer.cidr}"
        excepts = [str(e) for e in peer.excepts if e.subnet_of(peer.cidr)]  # type: ignore[arg-type]
        if excepts:
            m += f" && {fam}.{side} != {{{', '.join(excepts)}}}"
        return f"({m})"
    key = peer.key
    return (
        f"(ip4.{side} == ${names.netpol_peer_set(key, 4)} || "
        f"ip6.{side} == ${names.netpol_peer_set(key, 6)})"
    )


def _l4(spec: PortSpec, number: int | None) -> str:
    proto = spec.protocol.lower()
    if number is None:
        return proto
    if spec.end_port is not None and spec.end_port != number:
        return f"{proto}.dst >= {number} && {proto}.dst <= {spec.end_port}"
    return f"{proto}.dst == {number}"


def policy_rows(
    policy: Policy,
    selected: Sequence[PodInfo],
    peer_pods: Callable[[tuple[Peer, ...] | None], Sequence[PodInfo]],
    join_cidrs: Sequence[str],
    log: LogSpec | None = None,
) -> list[DesiredRow]:
    """Every row of one policy (its peer address sets are `peer_set_rows`).

    `peer_pods(peers)`: the pods the rule's label-selected peers pick (every
    pod for None), for named ports in egress rules.
    """
    ns, name = policy.namespace, policy.name
    owner = names.netpol_owner(ns, name)
    pg = names.netpol_port_group(ns, name)
    rows = [
        DesiredRow(
            "Port_Group",
            pg,
            owner,
            {"ports": sorted(p.port for p in selected)},
            labels={"kovn-netpol": f"{ns}/{name}"},
        )
    ]

    def acl(rule: str, direction: str, priority: int, match: str, action: str) -> None:
        columns: dict[str, ColumnValue] = {
            "direction": direction,
            "priority": priority,
            "match": match,
            "action": action,
        }
        if direction == "from-lport":
            columns["options"] = {"apply-after-lb": "true"}
        if log is not None and action == "drop":
            # Optional scalar columns are sets of at most one value.
            columns.update(
                log=True,
                name=[f"np:{ns}/{name}:{rule}"[:63]],
                severity=[log.severity],
                meter=[log.meter],
            )
        rows.append(
            DesiredRow(
                "ACL",
                names.netpol_acl_name(ns, name, rule),
                owner,
                columns,
                parent=pg,
                parent_table="Port_Group",
            )
        )

    for direction, rules in ((INGRESS, policy.ingress), (EGRESS, policy.egress)):
        if rules is None:
            continue
        ingress = direction == INGRESS
        d = "to-lport" if ingress else "from-lport"
        me = f"outport == @{pg}" if ingress else f"inport == @{pg}"
        side = "src" if ingress else "dst"
        tag = direction.lower()
        acl(f"{tag}/deny", d, names.NETPOL_DROP_PRIORITY, f"{me} && ip", "drop")
        joins = [c for c in join_cidrs]
        if joins:
            acl(
                f"{tag}/join",
                d,
                names.NETPOL_ALLOW_PRIORITY,
                f"{me} && {_addr_match(side, joins)}",
                "allow-related",
            )
        for i, rule in enumerate(rules):
            peers = rule.peers
            peer_term = ""
            if peers is not None:
                peer_term = " || ".join(_peer_match(p, side) for p in peers)
                peer_term = f"({peer_term})" if len(peers) > 1 else peer_term
            ports: list[PortSpec | None] = list(rule.ports) or [None]
            for j, port in enumerate(ports):
                rid = f"{tag}/{i}/{j}"
                if port is None or not isinstance(port.port, str):
                    number = port.port if port is not None else None
                    l4 = _l4(port, number) if port is not None else ""  # type: ignore[arg-type]
                    match = " && ".join(t for t in (me, "ip", peer_term, l4) if t)
                    acl(rid, d, names.NETPOL_ALLOW_PRIORITY, match, "allow-related")
                    continue
                # A named port: one ACL per number it resolves to.
                by_number: dict[int, list[PodInfo]] = {}
                candidates = selected if ingress else peer_pods(peers)
                for pod in candidates:
                    for n in pod.resolve(port.port, port.protocol):
                        by_number.setdefault(n, []).append(pod)
                for n in sorted(by_number):
                    pods = by_number[n]
                    l4 = _l4(port, n)
                    if ingress:
                        who = f"outport == {{{', '.join(sorted(_quote(p.port) for p in pods))}}}"
                        match = " && ".join(t for t in (who, "ip", peer_term, l4) if t)
                    else:
                        dst = _addr_match("dst", [ip for p in pods for ip in p.ips])
                        if not dst:
                            continue
                        match = f"{me} && {dst} && {l4}"
                    acl(f"{rid}/{n}", d, names.NETPOL_ALLOW_PRIORITY, match, "allow-related")
    return rows
