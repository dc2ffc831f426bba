"""Every NB row name and owner string kovn uses, built in one place.

An owner string is how `nb.sync` knows which rows belong to whom: a
reconciler asks for "the rows of owner X" and a resync groups desired rows
by the same strings. If two modules spelled one owner or one row name
differently, a restart would see drift that is not there, or leave rows
behind that nobody claims. So nothing outside this module formats them.
"""

from __future__ import annotations

import hashlib

CLUSTER_ROUTER = "kovn-cluster"
#: The one load-balancer group every switch names (Services' load balancers).
LB_GROUP = "kovn-cluster-lbs"
EGRESS_PRIORITY = 29000


# -- owners -----------------------------------------------------------------


def router_owner() -> str:
    return f"router/{CLUSTER_ROUTER}"


def lb_group_owner() -> str:
    # Load_Balancer_Group rows cannot be stamped: nb.tables derives this
    # owner from the row's name.
    return f"lbgroup/{LB_GROUP}"


def service_owner(namespace: str, service: str) -> str:
    return f"service/{namespace}/{service}"


def subnet_owner(subnet: str) -> str:
    return f"subnet/{subnet}"


def pod_owner(namespace: str, pod: str, nic: str = "") -> str:
    return f"pod/{namespace}/{pod}/{nic or 'eth0'}"


def node_owner(node: str) -> str:
    return f"node/{node}"


def egress_owner(node: str) -> str:
    return f"egress/{node}"


# -- row names --------------------------------------------------------------


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


def private_acl_name(subnet: str, family: str, rule: str) -> str:
    """A private subnet's ACL: family "ip4"/"ip6", rule "egress"/"allow"/"drop"."""
    return f"{subnet}/private-{family}-{rule}"


def default_route_name(version: int) -> str:
    return f"default-route/ip{version}"


def address_set_name(node: str, family: int) -> str:
    """An OVN identifier for a node's pod addresses ($name in matches)."""
    safe = "".join(c if c.isalnum() else "_" for c in node)
    digest = hashlib.blake2b(node.encode(), digest_size=3).hexdigest()
    return f"kovn_node_{safe}_{digest}_ip{family}"


def egress_policy_name(node: str, family: int) -> str:
    return f"egress/{node}/ip{family}"


def load_balancer_name(namespace: str, service: str, protocol: str) -> str:
    """One load balancer per Service and protocol ("tcp", "udp", "sctp")."""
    return f"kovn-lb-{namespace}-{service}-{protocol}"


def router_mac(subnet: str) -> str:
    """A stable locally administered unicast MAC for a subnet's router port."""
    digest = hashlib.blake2b(subnet.encode(), digest_size=4).digest()
    return "0a:5e:" + ":".join(f"{b:02x}" for b in digest)


# -- NetworkPolicy ----------------------------------------------------------

#: ACL priorities of NetworkPolicy port groups (stable: a policy edit never
#: moves them). Any allow beats every policy's default deny of a direction.
NETPOL_DROP_PRIORITY = 2000
NETPOL_ALLOW_PRIORITY = 2001
#: The Meter that rate-limits logged NetworkPolicy drops.
NETPOL_METER = "kovn-netpol-drops"


def _ident(text: str, size: int = 5) -> str:
    """A short OVN-identifier-safe digest (port group and address set names
    are referenced as @name/$name in matches: letters, digits, '_')."""
    return hashlib.blake2b(text.encode(), digest_size=size).hexdigest()


def netpol_owner(namespace: str, policy: str) -> str:
    return f"netpol/{namespace}/{policy}"


def netpol_peer_owner(peer: str) -> str:
    """A peer address set's owner: the peer selector's canonical text, shared
    by every policy naming it."""
    return f"netpol-peer/{_ident(peer, 8)}"


def netpol_meter_owner() -> str:
    return f"meter/{NETPOL_METER}"


def netpol_port_group(namespace: str, policy: str) -> str:
    return f"kovn_np_{_ident(f'{namespace}/{policy}', 8)}"


def netpol_peer_set(peer: str, family: int) -> str:
    return f"kovn_npp_{_ident(peer, 8)}_ip{family}"


def netpol_acl_name(namespace: str, policy: str, rule: str) -> str:
    return f"netpol/{namespace}/{policy}/{rule}"
