"""Logical switch ports for pod NICs and for nodes' join ports.

A pod NIC's port carries its MAC and addresses with port security on (a pod
cannot spoof another's address) and is bound to its node with
`requested-chassis`; a node's join port pins only its MAC, because the node
forwards its pods' egress traffic from and to any address.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.controller.nb.rows import DesiredRow
from services.controller.nb.tables import ColumnValue
from services.controller.topology import names


@dataclass(frozen=True)
class NicAddress:
    """What ipam gave one NIC: its MAC and addresses with prefix."""

    mac: str
    #: "10.16.0.5/16" style, one per family.
    addresses: tuple[str, ...]

    @property
    def ips(self) -> list[str]:
        return [a.split("/", 1)[0] for a in self.addresses]


def _port_columns(addr: NicAddress, node: str, security: list[str]) -> dict[str, ColumnValue]:
    return {
        "addresses": [" ".join([addr.mac, *addr.ips])],
        "options": {"requested-chassis": node} if node else {},
        "port_security": security,
    }


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
    entry = " ".join([addr.mac, *addr.ips])
    return DesiredRow(
        "Logical_Switch_Port",
        names.pod_port_name(namespace, pod, nic),
        names.pod_owner(namespace, pod, nic),
        columns=_port_columns(addr, node, [entry] if port_security else []),
        parent=subnet,
        labels={"pod": f"{namespace}/{pod}", "nic": nic},
    )


def node_port_row(node: str, join_subnet: str, addr: NicAddress) -> DesiredRow:
    """A node's join port (port security on its MAC only)."""
    return DesiredRow(
        "Logical_Switch_Port",
        names.node_port_name(node),
        names.node_owner(node),
        columns=_port_columns(addr, node, [addr.mac]),
        parent=join_subnet,
        labels={"node": node},
    )
