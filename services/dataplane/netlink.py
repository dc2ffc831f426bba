"""Veth pairs, addresses, routes and offloads, over netlink (pyroute2).

Netlink sockets for a pod's namespace are opened by switching only the
calling thread into that namespace for the socket() call (setns is
per-thread), which costs microseconds; pyroute2's own netns support forks a
helper process per socket, which is slow and unsafe next to grpc's threads.
Opening by path with O_RDONLY never creates a namespace: a missing one
raises NetnsMissing.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import ipaddress
import os
import socket
import struct
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from pyroute2 import AsyncIPRoute, IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from services.dataplane.errors import IfnameTaken, NetnsMissing

_CLONE_NEWNET = 0x40000000
_SIOCETHTOOL = 0x8946
_ETHTOOL_GSTRINGS = 0x1B
_ETHTOOL_GSSET_INFO = 0x37
_ETHTOOL_SFEATURES = 0x3B
_ETH_SS_FEATURES = 4
_LOOPBACK_INDEX = 1  # lo is always the first device of a network namespace
_libc = ctypes.CDLL(None, use_errno=True)


@contextlib.contextmanager
def _entered(netns: str) -> Iterator[None]:
    """The calling thread inside the network namespace at `netns`, then back."""
    try:
        target = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise NetnsMissing(f"{netns}: {err.strerror}") from None
    current = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(target, _CLONE_NEWNET) != 0:
            code = ctypes.get_errno()
            raise NetnsMissing(f"{netns}: not a network namespace ({os.strerror(code)})")
        try:
            yield
        finally:
            if _libc.setns(current, _CLONE_NEWNET) != 0:
                # This thread would keep running in the pod's namespace: never.
                os.write(2, b"kovn dataplane: cannot return to its own netns\n")
                os._exit(70)
    finally:
        os.close(target)
        os.close(current)


def ns_socket(netns: str, family: int, kind: int, proto: int = 0) -> socket.socket:
    """A socket created inside the network namespace at `netns`."""
    with _entered(netns):
        return socket.socket(family, kind, proto)


def ipv6_off(ifname: str, netns: str | None = None) -> None:
    """IPv6 disabled on a link that is still down: no link-local address,
    no duplicate address detection, no MLD reports or router solicitations.

    A link that carries no IPv6 address would otherwise send those into the
    overlay on every pod start (each one an upcall in the userspace
    datapath) and keep kernel workers busy; in a burst that is a few
    milliseconds of CPU per pod. /proc/sys/net is resolved in the namespace
    of the thread that opens it. A kernel without IPv6 has no such file,
    which is as good.
    """
    path = f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"
    with contextlib.ExitStack() as stack:
        if netns is not None:
            stack.enter_context(_entered(netns))
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return
    try:
        os.write(fd, b"1")
    finally:
        os.close(fd)


def check_netns(netns: str) -> None:
    """Raise NetnsMissing unless `netns` is a live network namespace."""
    ns_socket(netns, socket.AF_UNIX, socket.SOCK_DGRAM).close()


def link_index(ifname: str, netns: str | None = None) -> int | None:
    """The index of ifname (in our namespace or the one at `netns`), None if absent.

    An ioctl, not a netlink GET: pyroute2 decodes every attribute of the
    answer in Python, a measurable share of an ADD's CPU in a pod burst.
    Raises NetnsMissing for a namespace that is gone.
    """
    with contextlib.ExitStack() as stack:
        if netns is not None:
            stack.enter_context(_entered(netns))
        try:
            return socket.if_nametoindex(ifname)
        except OSError:
            return None


@contextlib.asynccontextmanager
async def route(netns: str | None = None) -> AsyncIterator[Any]:
    """An AsyncIPRoute in our namespace, or in the one at path `netns`."""
    if netns is None:
        ipr = AsyncIPRoute()
    else:
        sock = ns_socket(netns, socket.AF_NETLINK, socket.SOCK_DGRAM, 0)
        ipr = AsyncIPRoute(fileno=sock.detach())
    async with ipr:
        yield ipr


def _ethtool(sock: socket.socket, ifname: str, data: bytearray) -> None:
    buf = ctypes.create_string_buffer(bytes(data), len(data))
    ifreq = struct.pack("16sP", ifname.encode(), ctypes.addressof(buf))
    fcntl.ioctl(sock.fileno(), _SIOCETHTOOL, ifreq + b"\0" * (40 - len(ifreq)))
    data[:] = buf.raw


def _feature_names(sock: socket.socket, ifname: str) -> list[str]:
    info = bytearray(struct.pack("IIQ", _ETHTOOL_GSSET_INFO, 0, 1 << _ETH_SS_FEATURES) + b"\0" * 4)
    _ethtool(sock, ifname, info)
    count = struct.unpack_from("I", info, 16)[0]
    strings = bytearray(struct.pack("III", _ETHTOOL_GSTRINGS, _ETH_SS_FEATURES, count))
    strings += b"\0" * (32 * count)
    _ethtool(sock, ifname, strings)
    return [
        strings[12 + 32 * i : 12 + 32 * (i + 1)].split(b"\0", 1)[0].decode() for i in range(count)
    ]


def _offload_feature(name: str) -> bool:
    # Every transmit checksum and segmentation feature, e.g. tx-checksum-ip-generic,
    # tx-tcp-segmentation, tx-tcp6-segmentation, tx-generic-segmentation.
    return name.startswith("tx-") and any(w in name for w in ("checksum", "segmentation", "gso"))


def offloads_off(ifname: str, netns: str | None = None) -> None:
    """Transmit checksum and segmentation offloads off (like `ethtool -K tx off
    tso off gso off`): the userspace datapath forwards packets as the kernel
    hands them over, so they must be complete."""
    if netns is None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    else:
        sock = ns_socket(netns, socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        names = _feature_names(sock, ifname)
        blocks = (len(names) + 31) // 32
        valid = [0] * blocks
        for bit, name in enumerate(names):
            if _offload_feature(name):
                valid[bit // 32] |= 1 << (bit % 32)
        request = bytearray(struct.pack("II", _ETHTOOL_SFEATURES, blocks))
        for mask in valid:
            request += struct.pack("II", mask, 0)  # valid bits, requested value 0 (off)
        try:
            _ethtool(sock, ifname, request)
        except OSError as err:
            if err.errno != errno.EOPNOTSUPP:
                raise


async def index_of(ipr: Any, ifname: str) -> int | None:
    found = await ipr.link_lookup(ifname=ifname)
    return int(found[0]) if found else None


async def delete_link(ipr: Any, ifname: str) -> bool:
    """Delete a link if it exists; True when something was deleted."""
    try:
        await ipr.link("del", ifname=ifname)
    except NetlinkError as err:
        if err.code in (errno.ENODEV, errno.ENOENT, errno.EINVAL):
            return False
        raise
    return True


@dataclass
class PodLink:
    """What the pod side of an attachment looks like right now."""

    mac: str = ""
    mtu: int = 0
    up: bool = False
    addresses: set[str] = field(default_factory=set)
    routes: set[tuple[str, str]] = field(default_factory=set)


def _family(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


async def inspect_pod(netns: str, ifname: str) -> PodLink | None:
    """The pod side as the kernel sees it; None when ifname is absent."""
    async with route(netns) as ipr:
        index = await index_of(ipr, ifname)
        if index is None:
            return None
        links = await ipr.link("get", index=index)
        link = links[0]
        out = PodLink(
            mac=str(link.get("address") or ""),
            mtu=int(link.get("mtu") or 0),
            up=bool(link.get("flags", 0) & 1),
        )
        async for addr in await ipr.addr("dump", index=index):
            out.addresses.add(f"{addr.get('address')}/{addr.get('prefixlen')}")
        for family in (socket.AF_INET, socket.AF_INET6):
            async for r in await ipr.route("dump", family=family):
                if r.get("oif") != index or r.get("table") != 254:
                    continue
                dst = r.get("dst")
                dst_text = (
                    f"{dst}/{r.get('dst_len')}"
                    if dst
                    else ("0.0.0.0/0" if family == socket.AF_INET else "::/0")
                )
                out.routes.add((dst_text, str(r.get("gateway") or "")))
        return out


def family_of(address: str) -> int:
    return _family(address)


# -- blocking variants, run in worker threads ---------------------------------
#
# A netlink request is handled inside the kernel while the sender waits in
# send() (under the RTNL lock, often behind ovs-vswitchd). Done on the event
# loop, that wait stalls every other CNI call; in a worker thread it releases
# the GIL and other calls proceed. pyroute2's synchronous IPRoute gives each
# thread its own socket and loop.


@contextlib.contextmanager
def _sync_route(netns: str | None = None) -> Iterator[Any]:
    if netns is None:
        ipr = IPRoute()
    else:
        ipr = IPRoute(fileno=ns_socket(netns, socket.AF_NETLINK, socket.SOCK_DGRAM, 0).detach())
    with ipr:
        yield ipr


def delete_link_sync(ifname: str) -> bool:
    """Delete a link in our namespace if it exists; True when something was deleted."""
    with _sync_route() as ipr:
        try:
            ipr.link("del", ifname=ifname)
        except NetlinkError as err:
            if err.code in (errno.ENODEV, errno.ENOENT, errno.EINVAL):
                return False
            raise
    return True


def _create_veth_sync(
    ipr: Any, host: str, host_mac: str, ifname: str, netns: str, mac: str, mtu: int
) -> None:
    fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        peer: dict[str, Any] = {"ifname": ifname, "net_ns_fd": fd}
        extra: dict[str, Any] = {"address": host_mac}
        if mac:
            peer["address"] = mac
        if mtu:
            peer["mtu"] = mtu
            extra["mtu"] = mtu
        ipr.link("add", ifname=host, kind="veth", peer=peer, **extra)
    finally:
        os.close(fd)
    # The host end is only an OVS port: it never needs IPv6.
    ipv6_off(host)


def build_pod_link(
    *,
    host: str,
    host_mac: str,
    netns: str,
    ifname: str,
    mac: str,
    mtu: int,
    addresses: list[str],
    routes: list[tuple[str, str]],
    egress_rate_bps: int = 0,
) -> None:
    """Everything ADD does in the kernel, blocking: the veth (peer born in the
    pod with its MAC and MTU), offloads off on both ends, inside the pod lo
    up, addresses, link up, routes and the egress limit, and last the host
    end up.

    Raises IfnameTaken or NetnsMissing; on any failure after the veth exists
    the host end is deleted again (its peer goes with it).
    """
    check_netns(netns)
    with _sync_route() as ipr:
        try:
            _create_veth_sync(ipr, host, host_mac, ifname, netns, mac, mtu)
        except NetlinkError as err:
            if err.code != errno.EEXIST:
                raise
            if link_index(host) is None:
                raise IfnameTaken(f"{ifname} already exists in {netns}") from None
            # Left by an ADD that died half-way; the name is ours by construction.
            ipr.link("del", ifname=host)
            try:
                _create_veth_sync(ipr, host, host_mac, ifname, netns, mac, mtu)
            except NetlinkError as again:
                if again.code == errno.EEXIST:
                    raise IfnameTaken(f"{ifname} already exists in {netns}") from None
                raise
    try:
        offloads_off(host)
        index = link_index(ifname, netns)
        if index is None:
            raise NetnsMissing(f"{ifname} vanished from {netns}")
        with _sync_route(netns) as pod:
            pod.link("set", index=_LOOPBACK_INDEX, state="up")
            if not any(":" in a for a in addresses):
                ipv6_off(ifname, netns)
            offloads_off(ifname, netns)
            for address in addresses:
                iface = ipaddress.ip_interface(address)
                # IPv6: no duplicate address detection, the address is ours (IPAM).
                flags = {"flags": 0x02} if iface.version == 6 else {}
                pod.addr(
                    "add",
                    index=index,
                    address=str(iface.ip),
                    prefixlen=iface.network.prefixlen,
                    **flags,
                )
            pod.link("set", index=index, state="up")
            for dst, gateway in routes:
                spec: dict[str, Any] = {"dst": dst, "oif": index}
                if gateway:
                    spec["gateway"] = gateway
                pod.route("add", **spec)
            if egress_rate_bps:
                burst = max(32768, egress_rate_bps // 8 // 50)
                pod.tc(
                    "add", "tbf", index=index, rate=f"{egress_rate_bps}bit", burst=burst,
                    latency="50ms",
                )  # fmt: skip
        # The host end goes up last, fully configured and with its peer
        # already up: ovs-vswitchd (which reconfigures on every link change
        # in this namespace) sees one state change instead of three.
        host_index = link_index(host)
        if host_index is None:
            raise NetnsMissing(f"{host} vanished while the pod side was set up")
        with _sync_route() as ipr:
            ipr.link("set", index=host_index, state="up")
    except BaseException:
        with contextlib.suppress(Exception):
            delete_link_sync(host)
        raise
