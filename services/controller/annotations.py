"""Pod and node annotation names, with Kube-OVN's names read as aliases.

kovn writes only `kovn.io/...`; it reads `ovn.kubernetes.io/...` too, so
workloads migrating from Kube-OVN keep their fixed IPs, MACs and subnets.
For a NIC other than the primary one the key carries the NIC:
`kovn.io/<nic>.ip_address` (Kube-OVN uses `<provider>.kubernetes.io/...`).
"""

from __future__ import annotations

from collections.abc import Mapping

PREFIX = "kovn.io/"
ALIAS_PREFIX = "ovn.kubernetes.io/"
PRIMARY_NIC = "eth0"

# Requests (read)
LOGICAL_SWITCH = "logical_switch"
IP_ADDRESS = "ip_address"
MAC_ADDRESS = "mac_address"
IP_POOL = "ip_pool"
INGRESS_RATE = "ingress_rate"
EGRESS_RATE = "egress_rate"

# Results (written by the controller)
ALLOCATED = "allocated"
CIDR = "cidr"
GATEWAY = "gateway"
LOGICAL_PORT = "logical_port"
POD_UID = "pod_uid"

# Node join port (written by the controller for the dataplane's kovn0)
JOIN_IP = "join_ip"
JOIN_MAC = "join_mac"
JOIN_CIDR = "join_cidr"
JOIN_GATEWAY = "join_gateway"
JOIN_PORT = "join_port"


def key(name: str, nic: str = "") -> str:
    """The kovn.io key of `name` for `nic` (primary NIC: no NIC part)."""
    if nic in ("", PRIMARY_NIC):
        return PREFIX + name
    return f"{PREFIX}{nic}.{name}"


def read(annotations: Mapping[str, str] | None, name: str, nic: str = "") -> tuple[str, str]:
    """The value of `name` for `nic` and the key it came from ("" if absent).

    kovn's own key wins over the Kube-OVN alias when both are present.
    """
    if not annotations:
        return "", ""
    own = key(name, nic)
    value = annotations.get(own)
    if value:
        return value.strip(), own
    if nic in ("", PRIMARY_NIC):
        alias = ALIAS_PREFIX + name
        value = annotations.get(alias)
        if value:
            return value.strip(), alias
    return "", ""
