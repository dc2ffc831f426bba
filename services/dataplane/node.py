"""Node bootstrap and restart reconciliation.

Bootstrap makes the node servable: br-int with the configured datapath type,
the Open_vSwitch keys ovn-controller reads, and the kovn0 management port
once the controller gives this node its join address. Reconciliation runs
before the first CNI call is served and rebuilds nothing in memory: OVSDB is
the record. It removes what a crash left half-done (ports never
acknowledged, ports whose netns is gone, veths with no port) and leaves every
acknowledged, live attachment untouched so running pods keep their traffic.
"""

from __future__ import annotations

import errno
import ipaddress
import os
from typing import Any

import structlog
from pyroute2.netlink.exceptions import NetlinkError

from services.api.controller.v1 import controller_pb2
from services.common.ovsdb import Ovsdb
from services.dataplane import attachment as att
from services.dataplane import netlink, ovsport
from services.dataplane.attachment import HOST_PREFIX, Attachment
from services.dataplane.config import DataplaneConfig
from services.dataplane.errors import NetnsMissing

log = structlog.get_logger(__name__)

MGMT_PORT = "kovn0"


async def bootstrap(db: Ovsdb, cfg: DataplaneConfig) -> None:
    ids = {"system-id": cfg.node_name, "hostname": cfg.node_name}
    ids["ovn-bridge-datapath-type"] = cfg.datapath_type
    ids["ovn-bridge"] = cfg.bridge
    # Every subnet hangs off the cluster router, so a chassis with pods needs
    # nearly every datapath anyway: conditional monitoring would only make
    # the SB server recompute this chassis' monitor condition per new port.
    ids["ovn-monitor-all"] = "true" if cfg.ovn_monitor_all else "false"
    if cfg.ovn_remote:
        ids["ovn-remote"] = cfg.ovn_remote
    if cfg.encap_ip:
        ids["ovn-encap-ip"] = cfg.encap_ip
        ids["ovn-encap-type"] = cfg.encap_type
    # The userspace datapath cannot rely on NIC offloads (LAB.md): keep them off.
    other = {"hw-offload": "false"}
    if cfg.datapath_type == "netdev":
        other["userspace-tso-enable"] = "false"
    await ovsport.bootstrap(
        db,
        bridge=cfg.bridge,
        datapath_type=cfg.datapath_type,
        external_ids=ids,
        other_config=other,
    )
    log.info("node_bootstrapped", node=cfg.node_name, bridge=cfg.bridge)


def _netns_alive(path: str) -> bool:
    if not path or not os.path.exists(path):
        return False
    try:
        netlink.check_netns(path)
    except NetnsMissing:
        return False
    return True


async def reconcile(db: Ovsdb) -> dict[str, int]:
    """Remove half-done and orphaned attachments; returns counts."""
    found = await ovsport.attachments(db)
    stale: list[Attachment] = [a for a in found if not a.acked or not _netns_alive(a.netns)]
    if stale:
        await ovsport.unplug(db, [a.host_ifname for a in stale])
    known = {a.host_ifname for a in found}
    removed_links = 0
    async with netlink.route() as ipr:
        for a in stale:
            removed_links += await netlink.delete_link(ipr, a.host_ifname)
        async for link in await ipr.link("dump"):
            name = str(link.get("ifname") or "")
            # A veth named like ours with no port: an ADD died before plugging it.
            if (
                name.startswith(HOST_PREFIX)
                and len(name) == len(HOST_PREFIX) + 13
                and name not in known
                and link.get(("linkinfo", "kind")) == "veth"
            ):
                removed_links += await netlink.delete_link(ipr, name)
    counts = {
        "kept": len(found) - len(stale),
        "removed_ports": len(stale),
        "removed_links": removed_links,
    }
    log.info("dataplane_reconciled", **counts)
    return counts


async def plug_management_port(
    db: Ovsdb, cfg: DataplaneConfig, nn: controller_pb2.NodeNetwork
) -> None:
    """kovn0: an internal port on the join switch with the node's join IP and
    routes to the cluster CIDRs through the join gateway."""
    # kovn0 is not a pod attachment (no kovn-container-id): restart
    # reconciliation and GC never touch it.
    ids = {att.IFACE_ID: nn.logical_port, att.ATTACHED_MAC: nn.mac}
    await ovsport.plug_internal(db, cfg.bridge, MGMT_PORT, nn.mac, ids)
    # vswitchd creates the tap device when it assigns the ofport: wait for that.
    await ovsport.wait_ofport(db, MGMT_PORT, timeout=cfg.ovsdb_timeout)
    async with netlink.route() as ipr:
        index = await netlink.index_of(ipr, MGMT_PORT)
        if index is None:
            raise RuntimeError(f"{MGMT_PORT} has an ofport but no device")
        settings: dict[str, Any] = {"state": "up"}
        if nn.mtu:
            settings["mtu"] = nn.mtu
        await ipr.link("set", index=index, **settings)
        for ip in nn.ips:
            iface = ipaddress.ip_interface(ip.address)
            try:
                await ipr.addr(
                    "add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen
                )
            except NetlinkError as err:
                if err.code != errno.EEXIST:
                    raise
        for cidr in routed_cidrs(nn):
            await _route_via_join(ipr, index, cidr, nn)
    netlink.offloads_off(MGMT_PORT)
    log.info("management_port_ready", port=nn.logical_port, ips=[ip.address for ip in nn.ips])


def routed_cidrs(nn: controller_pb2.NodeNetwork) -> set[str]:
    """What the node reaches through kovn0: the pod subnets, and the Service
    ranges (the join switch names the cluster's load balancers)."""
    return {*nn.cluster_cidrs, *nn.service_cidrs}


async def _route_via_join(ipr: Any, index: int, cidr: str, nn: controller_pb2.NodeNetwork) -> None:
    """Route `cidr` out of kovn0 through the join gateway of its family (a
    route already there is fine)."""
    for ip in nn.ips:
        if ip.gateway and (":" in cidr) == (":" in ip.address):
            try:
                await ipr.route("add", dst=cidr, gateway=ip.gateway, oif=index)
            except NetlinkError as err:
                if err.code != errno.EEXIST:
                    raise


async def sync_cluster_routes(nn: controller_pb2.NodeNetwork, routed: set[str]) -> set[str]:
    """Make kovn0's routes match the cluster CIDRs now (subnets come and go
    after bootstrap); returns the CIDRs routed. Only CIDRs in `routed` (ours)
    are ever removed."""
    want = routed_cidrs(nn)
    async with netlink.route() as ipr:
        index = await netlink.index_of(ipr, MGMT_PORT)
        if index is None:
            raise RuntimeError(f"{MGMT_PORT} is not plugged yet")
        for cidr in sorted(want - routed):
            await _route_via_join(ipr, index, cidr, nn)
        for cidr in sorted(routed - want):
            try:
                await ipr.route("del", dst=cidr, oif=index)
            except NetlinkError as err:
                if err.code not in (errno.ESRCH, errno.ENOENT):
                    raise
    if want != routed:
        added, removed = sorted(want - routed), sorted(routed - want)
        log.info("cluster_routes_synced", added=added, removed=removed)
    return want
