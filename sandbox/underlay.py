"""The sandbox's "physical network": a Linux bridge and one veth per host.

Nodes, the OVN central and the external host each get an `eth0` whose peer
sits on a Linux bridge in the root namespace. The bridge carries no IP, so
the sandbox's underlay addresses never leave its namespaces and sandboxes
with overlapping subnets cannot see each other. Offloads are turned off on
every veth end, because the userspace datapath forwards packets whose
checksums the kernel left for hardware to fill in (ping works, TCP dies).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from sandbox import netns

OFFLOADS = ("tx", "off", "tso", "off", "gso", "off")


class UnderlayError(RuntimeError):
    """A link operation failed; the message names the link."""


def _ip(args: Sequence[str], ns: str | None = None, check: bool = True) -> None:
    argv = ["ip", *(["-n", ns] if ns else []), *args]
    res = subprocess.run(argv, capture_output=True, text=True)
    if check and res.returncode != 0:
        raise UnderlayError(f"{' '.join(argv)}: {res.stderr.strip()}")


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def disable_offloads(ifname: str, ns: str | None = None) -> None:
    netns.run(ns, ["ethtool", "-K", ifname, *OFFLOADS])


def create_bridge(name: str) -> None:
    """The root-namespace bridge; an existing one is reused."""
    if not link_exists(name):
        _ip(["link", "add", name, "type", "bridge", "stp_state", "0", "forward_delay", "0"])
    _ip(["link", "set", name, "up"])


def plug(bridge: str, root_link: str, ns: str, ifname: str = "eth0") -> None:
    """A veth from the bridge into namespace `ns` (named `ifname` there), both up."""
    if link_exists(root_link):
        _ip(["link", "del", root_link])
    _ip(["link", "add", root_link, "type", "veth", "peer", "name", ifname, "netns", ns])
    _ip(["link", "set", root_link, "master", bridge, "up"])
    _ip(["link", "set", ifname, "up"], ns=ns)
    disable_offloads(root_link)
    disable_offloads(ifname, ns)


def add_address(ns: str, ifname: str, cidr: str) -> None:
    _ip(["addr", "replace", cidr, "dev", ifname], ns=ns)
    _ip(["link", "set", ifname, "up"], ns=ns)


def delete_link(name: str) -> None:
    """Delete a root-namespace link if present (its veth peer goes with it)."""
    if link_exists(name):
        _ip(["link", "del", name], check=False)


def delete_link_in(ns: str, name: str) -> None:
    """Delete a link inside namespace `ns` if present."""
    _ip(["link", "del", name], ns=ns, check=False)
