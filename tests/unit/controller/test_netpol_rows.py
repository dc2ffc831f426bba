"""NetworkPolicy parsing (documented defaults) and its OVN rows (pure logic)."""

from __future__ import annotations

from typing import Any

from services.controller.topology import names
from services.controller.topology.policy import (
    EGRESS,
    INGRESS,
    IPBlock,
    LogSpec,
    PeerSelector,
    PodInfo,
    parse_policy,
    peer_set_rows,
    policy_rows,
)

JOIN = ["100.64.0.0/16"]
PG = names.netpol_port_group("x", "p")


def _np(**spec: Any) -> dict[str, Any]:
    spec.setdefault("podSelector", {})
    return {"metadata": {"namespace": "x", "name": "p"}, "spec": spec}


def _pod(name: str, ip: str, ns: str = "x", **named: int) -> PodInfo:
    return PodInfo(
        ns, name, names.pod_port_name(ns, name), (ip,), {},
        tuple(sorted((n, "TCP", port) for n, port in named.items())),
    )  # fmt: skip


def _acls(rows: list[Any]) -> dict[str, tuple[str, int, str, str]]:
    return {
        r.name.rsplit("/p/", 1)[1]: (
            r.columns["direction"], r.columns["priority"], r.columns["match"], r.columns["action"],
        )
        for r in rows
        if r.table == "ACL"
    }  # fmt: skip


def test_policy_types_default_from_the_rules_present() -> None:
    p = parse_policy(_np())
    assert p.ingress == () and p.egress is None  # Ingress always: deny all ingress
    p = parse_policy(_np(egress=[{}]))
    assert p.ingress == () and p.egress is not None and len(p.egress) == 1
    p = parse_policy(_np(policyTypes=["Egress"], ingress=[{}]))
    assert p.ingress is None and p.egress == ()  # rules of an unlisted type are ignored


def test_peers_and_ports_parse() -> None:
    p = parse_policy(_np(ingress=[{
        "from": [
            {"podSelector": {"matchLabels": {"a": "b"}}},
            {"namespaceSelector": {}},
            {"namespaceSelector": {"matchLabels": {"ns": "y"}}, "podSelector": {}},
            {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
        ],
        "ports": [{"port": 80}, {"protocol": "UDP", "port": 53, "endPort": 60},
                  {"port": "http"}],
    }]))  # fmt: skip
    assert p.ingress is not None
    (rule,) = p.ingress
    assert rule.peers is not None
    a, b, c, d = rule.peers
    assert isinstance(a, PeerSelector) and a.namespace == "x" and a.namespaces is None
    assert isinstance(b, PeerSelector) and b.namespaces is not None and b.namespaces.empty
    assert isinstance(c, PeerSelector) and a.key != c.key
    assert isinstance(d, IPBlock) and [str(e) for e in d.excepts] == ["10.1.0.0/16"]
    assert [(q.protocol, q.port, q.end_port) for q in rule.ports] == [
        ("TCP", 80, None), ("UDP", 53, 60), ("TCP", "http", None)
    ]  # fmt: skip
    assert not p.problems
    assert {s.key for s in p.peers()} == {a.key, b.key, c.key}


def test_unsupported_fields_and_protocols_are_problems_and_fail_closed() -> None:
    p = parse_policy(_np(ingress=[{"ports": [{"protocol": "ICMP"}]}], bogus=1))
    assert p.ingress == ()  # the rule is dropped, never widened
    assert any("spec.bogus" in m for m in p.problems)
    assert any("ICMP" in m for m in p.problems)


def test_default_deny_rows_keep_the_join_subnet() -> None:
    rows = policy_rows(parse_policy(_np()), [_pod("a", "10.16.0.5")], lambda _: [], JOIN)
    pg = rows[0]
    assert pg.table == "Port_Group" and pg.name == PG and pg.columns["ports"] == ["a.x"]
    assert _acls(rows) == {
        "ingress/deny": ("to-lport", 2000, f"outport == @{PG} && ip", "drop"),
        "ingress/join": ("to-lport", 2001, f"outport == @{PG} && ip4.src == {{100.64.0.0/16}}",
                         "allow-related"),
    }  # fmt: skip


def test_allow_rules_sit_above_every_deny() -> None:
    p = parse_policy(_np(
        ingress=[{"from": [{"podSelector": {}}, {"ipBlock": {"cidr": "fd00::/64"}}],
                  "ports": [{"port": 80, "endPort": 81}, {"protocol": "SCTP"}]}],
        egress=[{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}]}],
    ))  # fmt: skip
    acls = _acls(policy_rows(p, [], lambda _: [], JOIN))
    peer = next(iter(p.peers())).key
    s4, s6 = names.netpol_peer_set(peer, 4), names.netpol_peer_set(peer, 6)
    src = f"((ip4.src == ${s4} || ip6.src == ${s6}) || (ip6.src == fd00::/64))"
    assert acls["ingress/0/0"] == (
        "to-lport", 2001, f"outport == @{PG} && ip && {src} && tcp.dst >= 80 && tcp.dst <= 81",
        "allow-related",
    )  # fmt: skip
    assert acls["ingress/0/1"][2] == f"outport == @{PG} && ip && {src} && sctp"
    assert acls["egress/0/0"] == (
        "from-lport", 2001,
        f"inport == @{PG} && ip && (ip4.dst == 10.0.0.0/8 && ip4.dst != {{10.1.0.0/16}})",
        "allow-related",
    )  # fmt: skip
    assert acls["egress/deny"][1:] == (2000, f"inport == @{PG} && ip", "drop")


def test_egress_acls_apply_after_the_load_balancers() -> None:
    rows = policy_rows(parse_policy(_np(egress=[{}])), [], lambda _: [], JOIN)
    for r in rows:
        if r.table == "ACL":
            want = {"apply-after-lb": "true"} if r.columns["direction"] == "from-lport" else None
            assert r.columns.get("options") == want


def test_empty_rule_allows_everything_of_its_direction() -> None:
    acls = _acls(policy_rows(parse_policy(_np(ingress=[{}])), [], lambda _: [], JOIN))
    assert acls["ingress/0/0"] == ("to-lport", 2001, f"outport == @{PG} && ip", "allow-related")


def test_ingress_named_port_resolves_per_selected_pod() -> None:
    pods = [_pod("a", "10.16.0.5", http=80), _pod("b", "10.16.0.6", http=8080),
            _pod("c", "10.16.0.7", http=80), _pod("d", "10.16.0.8")]  # fmt: skip
    p = parse_policy(_np(ingress=[{"ports": [{"port": "http"}]}]))
    acls = _acls(policy_rows(p, pods, lambda _: [], JOIN))
    assert acls["ingress/0/0/80"][2] == 'outport == {"a.x", "c.x"} && ip && tcp.dst == 80'
    assert acls["ingress/0/0/8080"][2] == 'outport == {"b.x"} && ip && tcp.dst == 8080'
    assert not any(k.startswith("ingress/0/0") and k.count("/") == 2 for k in acls)


def test_egress_named_port_resolves_per_peer_pod() -> None:
    peers = [_pod("s1", "10.16.0.9", ns="y", dns=53), _pod("s2", "fd00::9", ns="y", dns=5353)]
    p = parse_policy(_np(egress=[{"to": [{"namespaceSelector": {}}], "ports": [{"port": "dns"}]}]))
    acls = _acls(policy_rows(p, [], lambda _: peers, JOIN))
    me = f"inport == @{PG}"
    assert acls["egress/0/0/53"][2] == f"{me} && ip4.dst == {{10.16.0.9}} && tcp.dst == 53"
    assert acls["egress/0/0/5353"][2] == f"{me} && ip6.dst == {{fd00::9}} && tcp.dst == 5353"


def test_logged_drops_name_their_policy_and_meter() -> None:
    rows = policy_rows(parse_policy(_np()), [], lambda _: [], JOIN, LogSpec())
    (deny,) = [r for r in rows if r.name.endswith("/deny")]
    assert deny.columns["log"] is True and deny.columns["meter"] == [names.NETPOL_METER]
    assert deny.columns["name"] == ["np:x/p:ingress/deny"]


def test_peer_sets_split_by_family_and_share_an_owner() -> None:
    v4, v6 = peer_set_rows("x|pods()", ["10.0.0.2", "fd00::2", "10.0.0.1"])
    assert v4.columns["addresses"] == ["10.0.0.1", "10.0.0.2"]
    assert v6.columns["addresses"] == ["fd00::2"]
    assert v4.owner == v6.owner == names.netpol_peer_owner("x|pods()")
    assert INGRESS != EGRESS
