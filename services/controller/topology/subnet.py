"""A subnet in the NB: the cluster router, the subnet's switch and its link.

Each Subnet is one logical switch with a router port at its gateway address
on the one cluster router (DESIGN §4). A private subnet adds ACLs on its own
switch; the join subnet adds the router's default routes.
"""

from __future__ import annotations

from services.controller.nb.rows import DesiredRow
from services.controller.nb.tables import ColumnValue
from services.controller.subnet_spec import SubnetSpec
from services.controller.topology import names
from services.controller.topology.names import CLUSTER_ROUTER


def router_row() -> DesiredRow:
    return DesiredRow(table="Logical_Router", name=CLUSTER_ROUTER, owner=names.router_owner())


def lb_group_row() -> DesiredRow:
    """The group holding every Service's load balancer; every switch names it,
    so NB references grow with Services, not Services x switches."""
    return DesiredRow("Load_Balancer_Group", names.LB_GROUP, names.lb_group_owner())


def cluster_rows() -> list[DesiredRow]:
    """The rows every subnet's rows lean on: the router and the LB group."""
    return [router_row(), lb_group_row()]


def private_acls(spec: SubnetSpec, join_cidrs: list[str]) -> list[DesiredRow]:
    """ACLs isolating a private subnet: only itself, its allowSubnets and the
    nodes (join subnet) may open connections to its pods; its pods may open
    connections anywhere (allow-related commits them, so replies return)."""
    if not spec.private:
        return []
    owner = names.subnet_owner(spec.name)
    rows: list[DesiredRow] = []
    for cidr in spec.cidrs:
        fam = "ip4" if cidr.version == 4 else "ip6"
        peers = [str(cidr)]
        for other in [*spec.allow_subnets, *join_cidrs]:
            if (":" in other) == (cidr.version == 6) and other not in peers:
                peers.append(other)
        rules: list[tuple[str, dict[str, ColumnValue]]] = [
            (
                "egress",
                {
                    "direction": "from-lport",
                    "priority": 1001,
                    "action": "allow-related",
                    "match": f"{fam}.src == {cidr}",
                },
            ),
            (
                "allow",
                {
                    "direction": "to-lport",
                    "priority": 1001,
                    "action": "allow-related",
                    "match": f"{fam}.dst == {cidr} && {fam}.src == {{{', '.join(peers)}}}",
                },
            ),
            (
                "drop",
                {
                    "direction": "to-lport",
                    "priority": 1000,
                    "action": "drop",
                    "match": f"{fam}.dst == {cidr}",
                },
            ),
        ]
        rows.extend(
            DesiredRow(
                "ACL",
                names.private_acl_name(spec.name, fam, rule),
                owner,
                columns=columns,
                parent=spec.name,
            )
            for rule, columns in rules
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
    owner = names.subnet_owner(spec.name)
    networks = [
        f"{gw}/{cidr.prefixlen}" for cidr, gw in zip(spec.cidrs, spec.gateways, strict=True)
    ]
    lrp = names.router_port_name(spec.name)
    return [
        DesiredRow(
            "Logical_Switch",
            spec.name,
            owner,
            columns={"load_balancer_group": [names.LB_GROUP]},
            labels=labels,
        ),
        DesiredRow(
            "Logical_Router_Port",
            lrp,
            owner,
            columns={"mac": names.router_mac(spec.name), "networks": networks},
            parent=CLUSTER_ROUTER,
        ),
        DesiredRow(
            "Logical_Switch_Port",
            names.switch_router_port_name(spec.name),
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
            names.default_route_name(cidr.version),
            names.subnet_owner(join.name),
            columns={"ip_prefix": "0.0.0.0/0" if cidr.version == 4 else "::/0", "nexthop": str(gw)},
            parent=CLUSTER_ROUTER,
        )
        for cidr, gw in zip(join.cidrs, join.gateways, strict=True)
    ]
