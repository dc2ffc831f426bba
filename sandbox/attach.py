"""Plug a network namespace into a node's br-int as an OVN logical port.

Datapath tests need "a pod on node X" before (and independently of) the
kovn CNI: a netns with an eth0 whose veth peer is an OVS port on br-int
carrying `external_ids:iface-id`, with offloads off as the userspace
datapath requires. This does exactly that and nothing more, synchronously,
so a test can check the sandbox's Geneve fabric with real packets.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass

from sandbox import netns, underlay
from sandbox.ovs import OvsNode


@dataclass
class Attachment:
    netns: str
    host_if: str  # veth end in the node's netns, an OVS port on br-int
    iface_id: str
    mac: str
    ip: str  # without prefix


def host_ifname(iface_id: str) -> str:
    """A deterministic 15-char-safe name for the node side of the veth."""
    return "sbxv" + hashlib.sha1(iface_id.encode()).hexdigest()[:10]


def plug(
    node: OvsNode,
    pod_netns: str,
    iface_id: str,
    mac: str,
    ip_cidr: str,
    gateway: str | None = None,
    mtu: int = 1400,
) -> Attachment:
    """Create pod_netns (if needed), a veth into it, and the br-int port.

    Returns once ovn-controller has installed the port's flows
    (`ovn-installed`), which needs the logical switch port to exist in NB.
    """
    netns.create(pod_netns)
    host = host_ifname(iface_id)
    ns = node.netns
    underlay.delete_link_in(ns, host)
    netns.run(ns, ["ip", "link", "add", host, "type", "veth", "peer", "name", "eth0",
                   "netns", pod_netns])  # fmt: skip
    netns.run(ns, ["ip", "link", "set", host, "mtu", str(mtu), "up"])
    netns.run(pod_netns, ["ip", "link", "set", "eth0", "address", mac, "mtu", str(mtu)])
    netns.run(pod_netns, ["ip", "addr", "add", ip_cidr, "dev", "eth0"])
    netns.run(pod_netns, ["ip", "link", "set", "eth0", "up"])
    if gateway:
        netns.run(pod_netns, ["ip", "route", "replace", "default", "via", gateway])
    underlay.disable_offloads(host, ns)
    underlay.disable_offloads("eth0", pod_netns)
    node.vsctl(
        "--may-exist", "add-port", "br-int", host,
        "--", "set", "Interface", host, f"external_ids:iface-id={iface_id}",
    )  # fmt: skip
    node.vsctl("wait-until", "Interface", host, "external_ids:ovn-installed=true")
    return Attachment(pod_netns, host, iface_id, mac, ip_cidr.split("/")[0])


def unplug(node: OvsNode, att: Attachment) -> None:
    """Remove the OVS port, the veth and the namespace; missing pieces are fine."""
    with contextlib.suppress(RuntimeError):  # the node may already be stopped
        node.vsctl("--if-exists", "del-port", "br-int", att.host_if)
    if netns.exists(node.netns):
        underlay.delete_link_in(node.netns, att.host_if)
    netns.delete(att.netns)
