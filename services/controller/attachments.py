"""Secondary pod NICs from Multus' `k8s.v1.cni.cncf.io/networks` annotation.

A pod asks for extra interfaces by naming NetworkAttachmentDefinitions
("ns/name@ifname", comma separated, or Multus' JSON list). kovn serves an
attachment from the Subnet whose `spec.provider` is "<name>.<namespace>"
(Kube-OVN's "<name>.<namespace>.ovn" is accepted too). Each attachment is
its own NIC: its own allocation, logical port and `kovn.io/<nic>.*`
annotations.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from services.common.errors import InvalidArgument

NETWORKS = "k8s.v1.cni.cncf.io/networks"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


@dataclass(frozen=True)
class Attachment:
    nic: str
    name: str
    namespace: str

    @property
    def providers(self) -> tuple[str, str]:
        return (f"{self.name}.{self.namespace}", f"{self.name}.{self.namespace}.ovn")


def _check(value: str, pattern: re.Pattern[str], what: str) -> str:
    if not pattern.match(value):
        raise InvalidArgument(f"{value!r} is not a valid {what}", field=NETWORKS)
    return value


def parse_networks(value: str, pod_namespace: str) -> list[Attachment]:
    """The attachments a pod asks for, in order; NICs default to net1, net2..."""
    value = value.strip()
    if not value:
        return []
    entries: list[tuple[str, str, str]] = []
    if value.startswith("["):
        try:
            items = json.loads(value)
        except ValueError as exc:
            raise InvalidArgument(f"not valid JSON ({exc})", field=NETWORKS) from None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise InvalidArgument("must be a list of objects", field=NETWORKS)
        for item in items:
            entries.append(
                (
                    str(item.get("namespace") or pod_namespace),
                    str(item.get("name") or ""),
                    str(item.get("interface") or ""),
                )
            )
    else:
        for part in (p.strip() for p in value.split(",") if p.strip()):
            ref, _, ifname = part.partition("@")
            ns, _, name = ref.rpartition("/")
            entries.append((ns or pod_namespace, name, ifname))
    out: list[Attachment] = []
    for i, (ns, name, ifname) in enumerate(entries, start=1):
        nic = ifname or f"net{i}"
        _check(name, _NAME, "NetworkAttachmentDefinition name")
        _check(ns, _NAME, "namespace")
        _check(nic, _IFNAME, "interface name")
        if nic == "eth0" or any(a.nic == nic for a in out):
            raise InvalidArgument(f"interface {nic!r} is used twice", field=NETWORKS)
        out.append(Attachment(nic=nic, name=name, namespace=ns))
    return out
