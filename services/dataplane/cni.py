"""CNI ADD, DEL, CHECK, STATUS and GC on this node.

Requests arrive already validated by `cni_shim.spec.parse`. ADD asks the
controller for the pod's network, builds the veth and the pod side, plugs
the host end in one OVSDB transaction, waits (on an OVSDB notification) for
ovn-installed and only then records the attachment as acknowledged; any
failure undoes every step in reverse order. DEL and GC are best effort and
idempotent.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import functools
import ipaddress
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import structlog
from pyroute2.netlink.exceptions import NetlinkError

from cni_shim import spec
from cni_shim.spec import Request
from services.api.controller.v1 import controller_pb2
from services.common.errors import DeadlineExceeded, Unavailable
from services.common.ovsdb import Ovsdb
from services.dataplane import metrics, netlink, ovsport
from services.dataplane.attachment import Attachment, host_ifname, host_mac
from services.dataplane.errors import (
    CheckFailed,
    IfnameTaken,
    InvalidConfig,
    InvalidEnv,
    PodNetworkRefused,
    UnknownContainer,
)
from services.dataplane.locks import KeyedLocks

log = structlog.get_logger(__name__)


class PodNetworks(Protocol):
    """Where ADD learns a pod NIC's network (the controller)."""

    async def get(
        self, namespace: str, name: str, nic: str, pod_uid: str, timeout: float
    ) -> controller_pb2.PodNetwork: ...


Undo = Callable[[], Awaitable[Any]]


def pod_identity(request: Request) -> tuple[str, str, str]:
    args = request.args
    name = args.get("K8S_POD_NAME", "")
    if not name:
        raise InvalidEnv("K8S_POD_NAME missing", field="CNI_ARGS")
    return args.get("K8S_POD_NAMESPACE", "") or "default", name, args.get("K8S_POD_UID", "")


def build_result(pn: controller_pb2.PodNetwork, request: Request, host_mac: str) -> dict[str, Any]:
    """The 1.1.0-shaped CNI result of an attachment, built once per ADD: the
    pod side is configured from it (`result_routes`), so the result says
    exactly what the pod got.

    Routes are exactly the controller's `routes`, never made up from the
    gateways: the controller alone knows which NIC carries the default route
    (the primary one) and which only its subnet's routes (a secondary one).
    """
    pod_iface: dict[str, Any] = {"name": request.ifname, "mac": pn.mac, "sandbox": request.netns}
    if pn.mtu:
        pod_iface["mtu"] = pn.mtu
    ips = [
        {"address": ip.address, **({"gateway": ip.gateway} if ip.gateway else {}), "interface": 1}
        for ip in pn.ips
    ]
    routes = [{"dst": r.destination, **({"gw": r.gateway} if r.gateway else {})} for r in pn.routes]
    return {
        "cniVersion": spec.LATEST,
        "interfaces": [{"name": host_ifname(request.container_id, request.ifname), "mac": host_mac},
                       pod_iface],
        "ips": ips,
        "routes": routes,
        "dns": {},
    }  # fmt: skip


def result_routes(result: dict[str, Any]) -> list[tuple[str, str]]:
    """A CNI result's routes as (destination, gateway or "" for on-link)."""
    return [(r["dst"], r.get("gw", "")) for r in result.get("routes", [])]


def check_pod_network(pn: controller_pb2.PodNetwork) -> None:
    for key in ("logical_port", "mac"):
        if not getattr(pn, key):
            raise PodNetworkRefused(f"controller answer lacks {key}")
    if not pn.ips:
        raise PodNetworkRefused("controller answer has no IP addresses")
    for r in pn.routes:
        try:
            dst = ipaddress.ip_network(r.destination)
            if r.gateway and ipaddress.ip_address(r.gateway).version != dst.version:
                raise ValueError(f"gateway {r.gateway} is not of the family of {dst}")
        except ValueError as err:
            raise PodNetworkRefused(f"controller answer has a bad route: {err}") from None


class CniHandler:
    """Serves validated CNI requests for one node."""

    def __init__(
        self,
        db: Ovsdb,
        pods: PodNetworks,
        *,
        bridge: str,
        ovn_install_timeout: float,
        controller_timeout: float,
        max_parallel: int,
        ready: Callable[[], bool],
    ) -> None:
        self.db = db
        self.pods = pods
        self.bridge = bridge
        self.ovn_install_timeout = ovn_install_timeout
        self.controller_timeout = controller_timeout
        self._parallel = asyncio.Semaphore(max_parallel)
        # Netlink requests block in the kernel (RTNL): they run in these threads.
        self._threads = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_parallel, thread_name_prefix="netlink"
        )
        self._locks = KeyedLocks()
        self._ready = ready

    def close(self) -> None:
        self._threads.shutdown(wait=True)

    async def handle(self, request: Request, time_left: float | None = None) -> bytes:
        """Serve one request; returns stdout bytes or raises a KovnError
        (services.dataplane.errors gives each its CNI code).

        time_left is what remains of the caller's deadline: the controller is
        not waited on beyond it (minus a margin to roll back and answer).
        """
        if request.command == "ADD":
            budget = self.controller_timeout
            if time_left is not None:
                budget = max(0.1, min(budget, time_left - 1.0))
            async with self._locks.hold((request.container_id, request.ifname)):
                return await self.add(request, budget)
        if request.command == "DEL":
            async with self._locks.hold((request.container_id, request.ifname)):
                await self.delete(request.container_id, request.ifname)
            return b""
        if request.command == "CHECK":
            async with self._locks.hold((request.container_id, request.ifname)):
                await self.check(request)
            return b""
        if request.command == "STATUS":
            await self.status()
            return b""
        if request.command == "GC":
            await self.gc(request)
            return b""
        raise InvalidEnv(f"{request.command} is not served here", field="CNI_COMMAND")

    # -- ADD ---------------------------------------------------------------

    async def add(self, request: Request, controller_timeout: float | None = None) -> bytes:
        entered = time.monotonic()
        namespace, name, pod_uid = pod_identity(request)
        cid, ifname, netns = request.container_id, request.ifname, request.netns
        existing = await ovsport.find_host(self.db, host_ifname(cid, ifname))
        if existing is not None and existing.key == (cid, ifname):
            if existing.acked and existing.netns == netns and existing.result:
                # A retried ADD (the runtime lost our answer): same answer again.
                return json.dumps(spec.convert_result(existing.result, request.version)).encode()
            await self.delete(cid, ifname)
        # Before asking the controller: a bad netns (NetnsMissing) or a taken
        # name fails fast.
        taken = await asyncio.get_running_loop().run_in_executor(
            self._threads, netlink.link_index, ifname, netns
        )
        if taken is not None:
            owner = await ovsport.owner_of(self.db, netns, ifname)
            whose = f": it belongs to container {owner}" if owner else ""
            raise IfnameTaken(f"{ifname} already exists in {netns}{whose}")
        asked = time.monotonic()
        pn = await self.pods.get(
            namespace, name, ifname, pod_uid, controller_timeout or self.controller_timeout
        )
        check_pod_network(pn)
        host, mac = host_ifname(cid, ifname), host_mac(cid, ifname)
        result = build_result(pn, request, mac)
        undo: list[Undo] = []
        started = time.monotonic()
        phases: dict[str, float] = {"controller_seconds": round(started - asked, 4)}
        try:
            async with self._parallel:
                await self._build_veth(request, pn, host, mac, result_routes(result), undo)
            phases["netns_seconds"] = round(time.monotonic() - started, 4)
            a = Attachment(
                container_id=cid,
                ifname=ifname,
                netns=netns,
                host_ifname=host,
                namespace=namespace,
                name=name,
                pod_uid=pod_uid or pn.pod_uid,
                logical_port=pn.logical_port,
                mac=pn.mac,
                ips=[ip.address for ip in pn.ips],
                network=str(request.config.get("name", "")),
                result=result,
            )
            await ovsport.plug(self.db, self.bridge, a, ingress_rate_bps=pn.qos.ingress_rate_bps)
            undo.append(lambda: ovsport.unplug(self.db, [host]))
            plugged = time.monotonic()
            try:
                await ovsport.wait_installed(self.db, host, self.ovn_install_timeout)
            except TimeoutError:
                raise DeadlineExceeded(
                    f"ovn-controller did not install port {pn.logical_port} "
                    f"within {self.ovn_install_timeout:g}s"
                ) from None
            waited = time.monotonic() - plugged
            metrics.OVN_INSTALLED_WAIT.observe(waited)
            phases["ovn_installed_seconds"] = round(waited, 4)
            await ovsport.mark_acked(self.db, host)
        except BaseException:
            await self._rollback(undo, cid, ifname)
            raise
        log.info(
            "cni_add",
            container_id=cid,
            ifname=ifname,
            pod=f"{namespace}/{name}",
            port=pn.logical_port,
            host_ifname=host,
            seconds=round(time.monotonic() - started, 4),
            server_seconds=round(time.monotonic() - entered, 4),
            **phases,
        )
        return json.dumps(spec.convert_result(result, request.version)).encode()

    async def _build_veth(
        self,
        request: Request,
        pn: controller_pb2.PodNetwork,
        host: str,
        mac: str,
        routes: list[tuple[str, str]],
        undo: list[Undo],
    ) -> None:
        work = functools.partial(
            netlink.build_pod_link,
            host=host,
            host_mac=mac,
            netns=request.netns,
            ifname=request.ifname,
            mac=pn.mac,
            mtu=pn.mtu,
            addresses=[ip.address for ip in pn.ips],
            routes=routes,
            egress_rate_bps=pn.qos.egress_rate_bps,
        )
        running = asyncio.get_running_loop().run_in_executor(self._threads, work)
        try:
            await asyncio.shield(running)
        except asyncio.CancelledError:
            # The kernel work cannot be interrupted: let it finish, then the
            # caller's rollback deletes what it built.
            with contextlib.suppress(Exception):
                await running
            undo.append(lambda: self._delete_veth(host))
            raise
        undo.append(lambda: self._delete_veth(host))

    async def _rollback(self, undo: list[Undo], cid: str, ifname: str) -> None:
        for step in reversed(undo):
            try:
                await asyncio.shield(step())
            except Exception:
                log.exception("cni_rollback_step_failed", container_id=cid, ifname=ifname)

    async def _delete_veth(self, host: str) -> bool:
        loop = asyncio.get_running_loop()
        deleted: bool = await loop.run_in_executor(self._threads, netlink.delete_link_sync, host)
        return deleted

    # -- DEL / GC ----------------------------------------------------------

    async def delete(self, container_id: str, ifname: str) -> None:
        """Remove the port and the veth (its peer dies with it). Never fails on absence."""
        host = host_ifname(container_id, ifname)
        started = time.monotonic()
        # Independent steps (OVSDB and the kernel): run them side by side.
        unplugged, deleted = await asyncio.gather(
            ovsport.unplug(self.db, [host]), self._delete_veth(host), return_exceptions=True
        )
        if isinstance(deleted, NetlinkError) and deleted.code == errno.ENODEV:
            deleted = False
        for outcome in (unplugged, deleted):
            if isinstance(outcome, BaseException):
                raise outcome
        log.info(
            "cni_del",
            container_id=container_id,
            ifname=ifname,
            host_ifname=host,
            seconds=round(time.monotonic() - started, 4),
        )

    async def gc(self, request: Request) -> None:
        raw = request.config.get("cni.dev/valid-attachments")
        if raw is None:
            raw = request.config.get("cni.dev/attachments", [])
        if not isinstance(raw, list):
            raise InvalidConfig("must be a list", field="cni.dev/valid-attachments")
        valid: set[tuple[str, str]] = set()
        for item in raw:
            if not isinstance(item, dict) or not isinstance(item.get("containerID"), str):
                raise InvalidConfig(
                    f"{item!r} lacks containerID", field="cni.dev/valid-attachments"
                )
            valid.add((item["containerID"], str(item.get("ifname", ""))))
        network = str(request.config.get("name", ""))
        removed = 0
        for a in await ovsport.attachments(self.db):
            if a.network and a.network != network:
                continue
            if (a.container_id, a.ifname) in valid:
                continue
            async with self._locks.hold(a.key):
                await self.delete(a.container_id, a.ifname)
            removed += 1
        log.info("cni_gc", network=network, valid=len(valid), removed=removed)

    # -- CHECK / STATUS ----------------------------------------------------

    async def check(self, request: Request) -> None:
        a = await ovsport.find(self.db, request.container_id, request.ifname)
        if a is None or not a.acked:
            raise UnknownContainer(
                f"no attachment for container {request.container_id} ifname {request.ifname}"
            )
        problems: list[str] = []
        if a.netns != request.netns:
            problems.append(f"netns is {a.netns}, request says {request.netns}")
        port = await ovsport.port_state(self.db, a.host_ifname)
        if port is None:
            problems.append(f"OVS port {a.host_ifname} is missing")
        else:
            if port["external_ids"].get("iface-id") != a.logical_port:
                problems.append("OVS iface-id differs from the logical port")
            if port["external_ids"].get("ovn-installed") != "true":
                problems.append("ovn-installed is not set")
            if port["error"]:
                problems.append(f"OVS interface error: {port['error'][0]}")
        async with netlink.route() as ipr:
            if await netlink.index_of(ipr, a.host_ifname) is None:
                problems.append(f"host veth {a.host_ifname} is missing")
        pod = await netlink.inspect_pod(request.netns, request.ifname)
        if pod is None:
            problems.append(f"{request.ifname} is missing in {request.netns}")
        else:
            if pod.mac.lower() != a.mac.lower():
                problems.append(f"MAC is {pod.mac}, expected {a.mac}")
            if not pod.up:
                problems.append(f"{request.ifname} is down")
            for ip in a.ips:
                if ip not in pod.addresses:
                    problems.append(f"address {ip} is missing")
            prev = request.config.get("prevResult") or {}
            for ip in prev.get("ips", []) if isinstance(prev, dict) else []:
                address = ip.get("address") if isinstance(ip, dict) else None
                if address and address not in pod.addresses:
                    problems.append(f"prevResult address {address} is missing")
            for dst, gw in result_routes(a.result):
                if (dst, gw) not in pod.routes:
                    problems.append(f"route {dst} via {gw or 'link'} is missing")
        if problems:
            raise CheckFailed("CHECK found differences", "; ".join(problems))

    async def status(self) -> None:
        """Raises Unavailable (CNI code 50 for STATUS) unless ADD can be served."""
        if not self._ready():
            raise Unavailable("node not bootstrapped yet")
        if not self.db.connected:
            raise Unavailable(f"OVSDB at {self.db.remote} is not connected")
        try:
            exists = await ovsport.bridge_exists(self.db, self.bridge)
        except TimeoutError as err:  # an OvsdbError is an Unavailable already
            raise Unavailable(f"OVSDB does not answer: {err}") from None
        if not exists:
            raise Unavailable(f"bridge {self.bridge} is missing")
