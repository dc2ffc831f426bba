"""One pod NIC plugged on this node, and how it is recorded in OVSDB.

The node's OVSDB `Interface.external_ids` is the only record of what the
dataplane plugged (DESIGN.md section 2): these helpers write and read it, so
a restarted dataplane knows everything it knew before.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

HOST_PREFIX = "kv"
IFACE_ID = "iface-id"
CONTAINER = "kovn-container-id"
IFNAME = "kovn-ifname"
NETNS = "kovn-netns"
NAMESPACE = "kovn-pod-namespace"
NAME = "kovn-pod-name"
POD_UID = "kovn-pod-uid"
IPS = "kovn-ips"
MAC = "kovn-mac"
NETWORK = "kovn-network"
RESULT = "kovn-result"
ACKED = "kovn-acked"
ATTACHED_MAC = "attached-mac"
OVN_INSTALLED = "ovn-installed"


def host_ifname(container_id: str, ifname: str) -> str:
    """Deterministic host-side veth name: 'kv' + 13 hex digits (15 chars, IFNAMSIZ-1)."""
    digest = hashlib.sha256(f"{container_id}/{ifname}".encode()).hexdigest()
    return HOST_PREFIX + digest[:13]


def host_mac(container_id: str, ifname: str) -> str:
    """Deterministic, locally administered unicast MAC for the host veth end
    (it never appears on the logical network: OVS does not use it)."""
    digest = hashlib.sha256(f"mac/{container_id}/{ifname}".encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))


@dataclass
class Attachment:
    container_id: str
    ifname: str
    netns: str
    host_ifname: str
    namespace: str = ""
    name: str = ""
    pod_uid: str = ""
    logical_port: str = ""
    mac: str = ""
    ips: list[str] = field(default_factory=list)
    network: str = ""
    result: dict[str, Any] = field(default_factory=dict)
    acked: bool = False
    ovn_installed: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.container_id, self.ifname)

    def external_ids(self) -> dict[str, str]:
        return {
            IFACE_ID: self.logical_port,
            ATTACHED_MAC: self.mac,
            CONTAINER: self.container_id,
            IFNAME: self.ifname,
            NETNS: self.netns,
            NAMESPACE: self.namespace,
            NAME: self.name,
            POD_UID: self.pod_uid,
            IPS: ",".join(self.ips),
            MAC: self.mac,
            NETWORK: self.network,
            RESULT: json.dumps(self.result, separators=(",", ":")),
        }

    @classmethod
    def from_external_ids(cls, host: str, ids: Mapping[str, str]) -> Attachment | None:
        """The attachment an Interface row records, or None if not kovn's."""
        if CONTAINER not in ids or IFNAME not in ids:
            return None
        try:
            result = json.loads(ids.get(RESULT, "{}"))
        except ValueError:
            result = {}
        return cls(
            container_id=ids[CONTAINER],
            ifname=ids[IFNAME],
            netns=ids.get(NETNS, ""),
            host_ifname=host,
            namespace=ids.get(NAMESPACE, ""),
            name=ids.get(NAME, ""),
            pod_uid=ids.get(POD_UID, ""),
            logical_port=ids.get(IFACE_ID, ""),
            mac=ids.get(MAC, ""),
            ips=[ip for ip in ids.get(IPS, "").split(",") if ip],
            network=ids.get(NETWORK, ""),
            result=result if isinstance(result, dict) else {},
            acked=ids.get(ACKED) == "true",
            ovn_installed=ids.get(OVN_INSTALLED) == "true",
        )
