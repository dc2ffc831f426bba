"""Translate subnets, nodes and pod NICs into the NB rows kovn wants.

Pure functions, no I/O: the same inputs always give the same rows (and
hashes), which is what lets a restart recompute the topology and find that
nothing needs writing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from services.controller.nb.rows import ColumnValue, DesiredRow
from services.controller.subnet_spec import SubnetSpec

CLUSTER_ROUTER = "kovn-cluster"


def router_port_name(subnet: str) -> str:
    return f"{CLUSTER_ROUTER}-{subnet}"


def switch_router_port_name(subnet: str) -> str:
    return f"{subnet}-{CLUSTER_ROUTER}"


def pod_port_name(namespace: str, pod: str, nic: str = "") -> str:
    """LSP name of a pod NIC (Kube-OVN's `<pod>.<namespace>` for eth0)."""
    if nic in ("", "eth0"):
        return f"{pod}.{namespace}"
    return f"{pod}.{namespace}.{nic}"


def node_port_name(node: str) -> str:
    return f"node-{node}"


def router_mac(subnet: str) -> str:
    """A stable locally administered unicast MAC for a subnet's router port."""
    digest = hashlib.blake2b(subnet.encode(), digest_size=4).digest()
    return "0a:5e:" + ":".join(f"{b:02x}" for b in digest)


def router_row() -> DesiredRow:
    return DesiredRow(
        table="Logical_Router",
        name=CLUSTER_ROUTER,
        owner=f"router/{CLUSTER_ROUTER}",
    )


def private_acls(spec: SubnetSpec, join_cidrs: list[str]) -> list[DesiredRow]:
    """ACLs isolating a private subnet: only itself, its allowSubnets and the
    nodes (join subnet) may open connections to its pods; its pods may open
    connections anywhere (allow-related commits them, so replies return)."""
    if not spec.private:
        return []
    owner = f"subnet/{spec.name}"
    rows = []
    for cidr in spec.cidrs:
        fam = "ip4" if cidr.version == 4 else "ip6"
        peers = [str(cidr)]
        for other in [*spec.allow_subnets, *join_cidrs]:
            if (":" in other) == (cidr.version == 6) and other not in peers:
                peers.append(other)
        rule: dict[str, ColumnValue] = {
            "direction": "from-lport",
            "priority": 1001,
            "action": "allow-related",
        }
        rows.append(
            DesiredRow(
                "ACL",
                f"{spec.name}/private-{fam}-egress",
                owner,
                columns={**rule, "match": f"{fam}.src == {cidr}"},
                parent=spec.name,
            )
        )
        allow: dict[str, ColumnValue] = {
            "direction": "to-lport",
            "priority": 1001,
            "action": "allow-related",
        }
        rows.append(
            DesiredRow(
                "ACL",
                f"{spec.name}/private-{fam}-allow",
                owner,
                columns={
                    **allow,
                    "match": f"{fam}.dst == {cidr} && {fam}.src == {{{', '.join(peers)}}}",
                },
                parent=spec.name,
            )
        )
        rows.append(
            DesiredRow(
                "ACL",
                f"{spec.name}/private-{fam}-drop",
                owner,
                columns={
                    "direction": "to-lport",
                    "priority": 1000,
                    "action": "drop",
                    "match": f"{fam}.dst == {cidr}",
                },
                parent=spec.name,
            )
        )
    return rows


def subnet_rows(spec: SubnetSpec, join_cidrs: list[str] | None = None) -> list[DesiredRow]:
    """A subnet's switch, its router port on both sides of the link, and the
    ACLs of a private subnet."""
    labels = {
        "kovn-cidrs": ",".join(spec.cidr_strings),
        "kovn-gateways": ",".join(spec.gateway_strings),
    }
    if spec.mtu:
        labels["kovn-mtu"] = str(spec.mtu)
    if spec.gateway_type != "distributed":
        labels["kovn-gateway-type"] = spec.gateway_type
    if spec.private:
        labels["kovn-private"] = "true"
        labels["kovn-allow-subnets"] = ",".join(spec.allow_subnets)
    if spec.nat_outgoing:
        labels["kovn-nat-outgoing"] = "true"
    if spec.vlan:
        labels["kovn-vlan"] = spec.vlan
    if spec.provider:
        labels["kovn-provider"] = spec.provider
    owner = f"subnet/{spec.name}"
    networks = [
        f"{gw}/{cidr.prefixlen}" for cidr, gw in zip(spec.cidrs, spec.gateways, strict=True)
    ]
    lrp = router_port_name(spec.name)
    return [
        DesiredRow("Logical_Switch", spec.name, owner, labels=labels),
        DesiredRow(
            "Logical_Router_Port",
            lrp,
            owner,
            columns={"mac": router_mac(spec.name), "networks": networks},
            parent=CLUSTER_ROUTER,
        ),
        DesiredRow(
            "Logical_Switch_Port",
            switch_router_port_name(spec.name),
            owner,
            columns={"type": "router", "addresses": ["router"], "options": {"router-port": lrp}},
            parent=spec.name,
        ),
        *private_acls(spec, join_cidrs or []),
        *(default_routes(spec) if spec.internal else []),
    ]


def default_routes(join: SubnetSpec) -> list[DesiredRow]:
    """Default routes of the cluster router, towards the join subnet.

    OVN routes before it applies policies: without a route, traffic leaving
    the cluster is dropped before the egress policy can send it to its
    node. The policy decides the real next hop."""
    return [
        DesiredRow(
            "Logical_Router_Static_Route",
            f"default-route/ip{cidr.version}",
            f"subnet/{join.name}",
            columns={"ip_prefix": "0.0.0.0/0" if cidr.version == 4 else "::/0", "nexthop": str(gw)},
            parent=CLUSTER_ROUTER,
        )
        for cidr, gw in zip(join.cidrs, join.gateways, strict=True)
    ]


@dataclass(frozen=True)
class NicAddress:
    """What ipam gave one NIC: its MAC and addresses with prefix."""

    mac: str
    #: "10.16.0.5/16" style, one per family.
    addresses: tuple[str, ...]

    @property
    def ips(self) -> list[str]:
        return [a.split("/", 1)[0] for a in self.addresses]


def _port_columns(addr: NicAddress, node: str, port_security: bool) -> dict[str, object]:
    entry = " ".join([addr.mac, *addr.ips])
    columns: dict[str, object] = {
        "addresses": [entry],
        "options": {"requested-chassis": node} if node else {},
    }
    columns["port_security"] = [entry] if port_security else []
    return columns


def pod_port_row(
    namespace: str,
    pod: str,
    nic: str,
    subnet: str,
    addr: NicAddress,
    node: str,
    *,
    port_security: bool = True,
) -> DesiredRow:
    nic = nic or "eth0"
    return DesiredRow(
        "Logical_Switch_Port",
        pod_port_name(namespace, pod, nic),
        f"pod/{namespace}/{pod}/{nic}",
        columns=_port_columns(addr, node, port_security),  # type: ignore[arg-type]
        parent=subnet,
        labels={"pod": f"{namespace}/{pod}", "nic": nic},
    )


def node_port_row(node: str, join_subnet: str, addr: NicAddress) -> DesiredRow:
    """A node's join port. Port security pins its MAC only: the node forwards
    egress traffic of its pods, so packets to and from any IP pass it."""
    columns = _port_columns(addr, node, False)
    columns["port_security"] = [addr.mac]
    return DesiredRow(
        "Logical_Switch_Port",
        node_port_name(node),
        f"node/{node}",
        columns=columns,  # type: ignore[arg-type]
        parent=join_subnet,
        labels={"node": node},
    )


EGRESS_PRIORITY = 29000


def address_set_name(node: str, family: int) -> str:
    """An OVN identifier for a node's pod addresses ($name in matches)."""
    safe = "".join(c if c.isalnum() else "_" for c in node)
    digest = hashlib.blake2b(node.encode(), digest_size=3).hexdigest()
    return f"kovn_node_{safe}_{digest}_ip{family}"


def node_egress_rows(
    node: str,
    join_ips: list[str],
    pod_ips: list[str],
    internal_cidrs: list[str],
) -> list[DesiredRow]:
    """Distributed egress: a node's pods leave the cluster through the node.

    Per family, an address set of the node's pod IPs and a router policy
    rerouting their traffic to anything outside the cluster's subnets to the
    node's join address (where the node routes, and masquerades for subnets
    with natOutgoing).
    """
    owner = f"egress/{node}"
    rows = []
    for join_ip in join_ips:
        family = 6 if ":" in join_ip else 4
        fam = f"ip{family}"
        name = address_set_name(node, family)
        mine = sorted(ip for ip in pod_ips if (":" in ip) == (family == 6))
        internal = [c for c in internal_cidrs if (":" in c) == (family == 6)]
        rows.append(
            DesiredRow(
                "Address_Set", name, owner, columns={"addresses": mine}, labels={"node": node}
            )
        )
        match = f"{fam}.src == ${name}"
        if internal:
            match += f" && {fam}.dst != {{{', '.join(internal)}}}"
        rows.append(
            DesiredRow(
                "Logical_Router_Policy",
                f"egress/{node}/{fam}",
                owner,
                columns={
                    "priority": EGRESS_PRIORITY,
                    "match": match,
                    "action": "reroute",
                    "nexthops": [join_ip],
                },
                parent=CLUSTER_ROUTER,
                labels={"node": node},
            )
        )
    return rows
