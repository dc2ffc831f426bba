"""The dataplane gRPC service: the CNI entry point for kovn-cni plus the node
API for tooling, on the chassis (services.common.server)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from collections.abc import Callable

import grpc
import structlog

from cni_shim import spec
from services.api.controller.v1 import controller_pb2
from services.api.dataplane.v1 import dataplane_pb2, dataplane_pb2_grpc
from services.common.errors import InvalidArgument, NotFound, Unavailable
from services.common.grpc_types import Context
from services.common.health import Health
from services.common.ovsdb import Ovsdb
from services.common.server import Service
from services.common.tasks import cancel_and_wait
from services.dataplane import errors, metrics, node, ovsport
from services.dataplane.attachment import Attachment
from services.dataplane.cni import CniHandler
from services.dataplane.config import DataplaneConfig
from services.dataplane.controller_client import ControllerClient

log = structlog.get_logger(__name__)

#: How often kovn0's routes are compared with the cluster's subnets.
ROUTE_REFRESH_SECONDS = 5.0


def _attachment_pb(a: Attachment) -> dataplane_pb2.Attachment:
    return dataplane_pb2.Attachment(
        container_id=a.container_id,
        ifname=a.ifname,
        netns=a.netns,
        host_ifname=a.host_ifname,
        namespace=a.namespace,
        name=a.name,
        pod_uid=a.pod_uid,
        logical_port=a.logical_port,
        mac=a.mac,
        ips=a.ips,
        ovn_installed=a.ovn_installed,
    )


class DataplaneServicer(dataplane_pb2_grpc.DataplaneServicer):
    def __init__(self, service: DataplaneService) -> None:
        self._service = service

    async def Cni(
        self, request: dataplane_pb2.CniRequest, context: Context
    ) -> dataplane_pb2.CniReply:
        started = time.monotonic()
        command = request.env.get("CNI_COMMAND", "")
        command_label = command if command in spec.COMMANDS else "invalid"
        result = "ok"
        metrics.CNI_IN_FLIGHT.inc()
        try:
            stdout = await self._service.serve_cni(
                dict(request.env), request.stdin, context.time_remaining()
            )
            return dataplane_pb2.CniReply(stdout=stdout)
        except Exception as exc:
            err = errors.to_cni(exc, command)
            result = str(err.code)
            if errors.is_bug(exc):
                log.exception("cni_bug", command=command_label, code=err.code)
            else:
                log.info(
                    "cni_failed",
                    command=command_label,
                    code=err.code,
                    msg=err.msg,
                    container_id=request.env.get("CNI_CONTAINERID", "")[:80],
                )
            return dataplane_pb2.CniReply(
                stdout=err.to_json(spec.reply_version(request.stdin)),
                exit_code=1,
                error_code=err.code,
            )
        finally:
            metrics.CNI_IN_FLIGHT.dec()
            metrics.CNI_DURATION.labels(command_label, result).observe(time.monotonic() - started)

    async def ListAttachments(
        self,
        request: dataplane_pb2.ListAttachmentsRequest,
        context: Context,
    ) -> dataplane_pb2.ListAttachmentsResponse:
        found = await ovsport.attachments(self._service.db)
        found.sort(key=lambda a: a.key)
        return dataplane_pb2.ListAttachmentsResponse(attachments=[_attachment_pb(a) for a in found])

    async def GetAttachment(
        self,
        request: dataplane_pb2.GetAttachmentRequest,
        context: Context,
    ) -> dataplane_pb2.Attachment:
        if not request.container_id:
            raise InvalidArgument("must not be empty", field="container_id")
        ifname = request.ifname or "eth0"
        a = await ovsport.find(self._service.db, request.container_id, ifname)
        if a is None:
            raise NotFound(
                f"no attachment for container {request.container_id} ifname {ifname}",
                field="container_id",
            )
        return _attachment_pb(a)


class _RouteKick:
    """The controller as ADD sees it, telling the node about each pod network."""

    def __init__(
        self,
        inner: ControllerClient,
        seen: Callable[[controller_pb2.PodNetwork], None],
    ) -> None:
        self._inner = inner
        self._seen = seen

    async def get(
        self, namespace: str, name: str, nic: str, pod_uid: str, timeout: float
    ) -> controller_pb2.PodNetwork:
        pn = await self._inner.get(namespace, name, nic, pod_uid, timeout)
        self._seen(pn)
        return pn


class DataplaneService(Service):
    name = "dataplane"

    def __init__(self, config: DataplaneConfig) -> None:
        self.config = config
        self._db: Ovsdb | None = None
        self._handler: CniHandler | None = None
        self._controller = ControllerClient(
            config.controller,
            config.node_name,
            ca=config.controller_ca,
            cert=config.controller_cert,
            key=config.controller_key,
        )
        self._ready = False
        self._routed: set[str] = set()
        self._routes_stale = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._health: Health | None = None

    @property
    def db(self) -> Ovsdb:
        """The node's OVSDB; UNAVAILABLE to node API callers until connected."""
        if self._db is None:
            raise Unavailable("dataplane still starting: OVSDB not connected yet")
        return self._db

    def register(self, server: grpc.aio.Server) -> list[str]:
        dataplane_pb2_grpc.add_DataplaneServicer_to_server(  # type: ignore[no-untyped-call]
            DataplaneServicer(self), server
        )
        return [dataplane_pb2.DESCRIPTOR.services_by_name["Dataplane"].full_name]

    async def start(self, health: Health) -> None:
        # OVSDB may come up after us (DaemonSet order is not guaranteed): keep
        # trying in the background; until then STATUS says 50, health NOT_SERVING.
        self._health = health
        self._tasks.append(asyncio.create_task(self._startup()))

    async def _startup(self) -> None:
        cfg = self.config
        # This first step runs after the chassis marked everything SERVING.
        if self._health is not None and not self._ready:
            self._health.set_all(False)
        delay = 0.2
        while self._db is None:
            try:
                db = await ovsport.connect(cfg.ovsdb, cfg.ovsdb_timeout)
                try:
                    await node.bootstrap(db, cfg)
                    await node.reconcile(db)
                except BaseException:
                    await db.close()
                    raise
                self._db = db
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "dataplane_start_retry", ovsdb=cfg.ovsdb, error=str(exc), retry_in=delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        self._handler = CniHandler(
            self._db,
            _RouteKick(self._controller, self._kick_routes),
            bridge=cfg.bridge,
            ovn_install_timeout=cfg.ovn_install_timeout,
            controller_timeout=cfg.controller_timeout,
            max_parallel=cfg.max_parallel,
            ready=lambda: self._ready,
        )
        self._ready = True
        if self._health is not None:
            self._health.set_all(True)
        log.info("dataplane_ready", node=cfg.node_name)
        if cfg.controller:
            await self._management_port()

    async def _management_port(self) -> None:
        delay = 0.5
        while True:
            try:
                nn = await self._controller.node_network(timeout=30)
                if nn.logical_port:
                    await node.plug_management_port(self.db, self.config, nn)
                    self._routed = node.routed_cidrs(nn)
                    break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("management_port_retry", error=repr(exc), retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
        await self._keep_routes()

    def _kick_routes(self, pn: controller_pb2.PodNetwork) -> None:
        """A pod in a CIDR kovn0 has no route to yet: refresh the routes now."""
        routed = [ipaddress.ip_network(c) for c in self._routed]
        for ip in pn.ips:
            addr = ipaddress.ip_interface(ip.address).ip
            if not any(addr in net for net in routed):
                self._routes_stale.set()
                return

    async def _keep_routes(self) -> None:
        # Subnets are added after bootstrap. A pod of a new subnet on this
        # node kicks a refresh at once; subnets with pods only on other nodes
        # are picked up by the periodic refresh.
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._routes_stale.wait(), ROUTE_REFRESH_SECONDS)
            self._routes_stale.clear()
            try:
                nn = await self._controller.node_network(timeout=10)
                self._routed = await node.sync_cluster_routes(nn, self._routed)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("cluster_routes_retry", error=repr(exc))

    async def serve_cni(
        self, env: dict[str, str], stdin: bytes, time_left: float | None = None
    ) -> bytes:
        request = spec.parse(env, stdin)
        if request.command == "VERSION":
            return spec.version_reply(stdin)
        if self._handler is None:  # CNI code 50 for STATUS, 11 for the rest
            raise Unavailable("dataplane still starting")
        structlog.contextvars.bind_contextvars(container_id=request.container_id)
        return await self._handler.handle(request, time_left)

    async def stop(self) -> None:
        for task in self._tasks:
            await cancel_and_wait(task)
        if self._handler is not None:
            await asyncio.to_thread(self._handler.close)
        await self._controller.close()
        if self._db is not None:
            await self._db.close()
