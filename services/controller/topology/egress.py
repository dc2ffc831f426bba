"""Distributed egress: a node's pods leave the cluster through the node.

Per family, an address set of the node's pod IPs and a router policy
rerouting their traffic to anything outside the cluster's subnets to the
node's join address, where the node routes it on (and masquerades for
subnets with natOutgoing).
"""

from __future__ import annotations

from services.controller.nb.rows import DesiredRow
from services.controller.topology import names
from services.controller.topology.names import CLUSTER_ROUTER, EGRESS_PRIORITY


def node_egress_rows(
    node: str,
    join_ips: list[str],
    pod_ips: list[str],
    internal_cidrs: list[str],
) -> list[DesiredRow]:
    owner = names.egress_owner(node)
    rows = []
    for join_ip in join_ips:
        family = 6 if ":" in join_ip else 4
        fam = f"ip{family}"
        address_set = names.address_set_name(node, family)
        mine = sorted(ip for ip in pod_ips if (":" in ip) == (family == 6))
        internal = [c for c in internal_cidrs if (":" in c) == (family == 6)]
        rows.append(
            DesiredRow(
                "Address_Set",
                address_set,
                owner,
                columns={"addresses": mine},
                labels={"node": node},
            )
        )
        match = f"{fam}.src == ${address_set}"
        if internal:
            match += f" && {fam}.dst != {{{', '.join(internal)}}}"
        rows.append(
            DesiredRow(
                "Logical_Router_Policy",
                names.egress_policy_name(node, family),
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
