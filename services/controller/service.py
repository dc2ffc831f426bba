"""The controller service: wires watchers, queues, reconcilers, NB and ipam.

Every replica watches (warm caches) and answers the gRPC API; only the Lease
holder reconciles. On winning the Lease a replica first rebuilds its view
from the sources of truth — subnets from the API, allocations from ipam,
rows from the NB — repairs the NB difference in one batch, and only then
starts its work queues; on losing it, it stops them before anyone else can
take over (renew_deadline < lease_duration).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import grpc
import structlog

from services.api.controller.v1 import controller_pb2, controller_pb2_grpc
from services.common.health import Health
from services.common.kube import KubeClient, connect
from services.common.server import Service
from services.common.tasks import cancel_and_wait
from services.controller import metrics
from services.controller.allocations import collect_garbage, load_allocations
from services.controller.config import ControllerConfig
from services.controller.context import Context
from services.controller.events import EventRecorder
from services.controller.ipam_client import IpamClient
from services.controller.kinds import KINDS
from services.controller.leader import LeaderElector
from services.controller.nb.client import NbClient
from services.controller.nb.sync import NbSync, ResyncResult
from services.controller.nb.writer import NbWriter
from services.controller.registry import Registry
from services.controller.servicer import ControllerServicer
from services.controller.topology.names import CLUSTER_ROUTER
from services.controller.workqueue import WorkQueue

log = structlog.get_logger(__name__)


class ControllerService(Service):
    name = "controller"

    def __init__(self, config: ControllerConfig) -> None:
        self.config = config
        self.ctx: Context | None = None
        self.elector: LeaderElector | None = None
        self.servicer: ControllerServicer | None = None
        self.queues: dict[str, WorkQueue] = {}
        self.leading = asyncio.Event()
        #: Set once this replica, as leader, has resynced and started its queues.
        self.ready = asyncio.Event()
        #: Set once, as leader, every object was reconciled and garbage collected.
        self.caught_up = asyncio.Event()
        self.last_resync: ResyncResult | None = None
        self.registry: Registry | None = None
        self._leader_task: asyncio.Task[None] | None = None
        self._router_uuid = ""

    def register(self, server: grpc.aio.Server) -> list[str]:
        controller_pb2_grpc.add_ControllerServicer_to_server(_Lazy(self), server)  # type: ignore[no-untyped-call]
        return [controller_pb2.DESCRIPTOR.services_by_name["Controller"].full_name]

    def advertise(self, listen: str = "") -> str:
        """The address followers reach this replica at ("" while unknown)."""
        if self.config.advertise:
            return self.config.advertise
        host, _, port = (listen or self.config.listen).rpartition(":")
        if not port or port == "0":
            return ""
        if host in ("", "0.0.0.0", "[::]", "::"):
            # In a pod, the downward API's POD_IP is what peers can reach.
            host = os.environ.get("POD_IP") or socket.gethostname()
            if ":" in host:
                host = f"[{host}]"
        return f"{host}:{port}"

    async def _learn_bound_address(self) -> None:
        """With `listen` on port 0 and no `advertise`, the real port is only
        known to the chassis, which writes it to the ready file right after
        start() returns; no event exists for that, so poll with a deadline."""
        path = Path(self.config.ready_file)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if path.exists():
                with contextlib.suppress(ValueError, OSError):
                    grpc_address = json.loads(path.read_text()).get("grpc", "")
                    if grpc_address and self.elector is not None:
                        self.elector.address = self.advertise(grpc_address)
                        return
            await asyncio.sleep(0.05)

    async def start(self, health: Health) -> None:
        cfg = self.config
        kube = KubeClient(await connect(cfg.kubeconfig))
        # With a CA for ipam, the controller's own certificate proves who it is.
        ipam = IpamClient(
            cfg.ipam,
            ca=cfg.ipam_ca,
            cert=cfg.tls_cert if cfg.ipam_ca else "",
            key=cfg.tls_key if cfg.ipam_ca else "",
        )
        nb = NbClient(cfg.nb)
        # The NB replica (every row, on a big cluster) downloads while the
        # informers list: connecting is awaited only by leader work.
        self._nb_connect: asyncio.Task[None] = asyncio.create_task(nb.connect())
        writer = NbWriter(nb)
        writer.start()
        informers = Registry.informers_for(kube, KINDS)
        ctx = self.ctx = Context(
            config=cfg,
            kube=kube,
            ipam=ipam,
            nb=nb,
            sync=NbSync(nb, writer),
            informers=informers,
            events=EventRecorder(kube),
        )
        registry = self.registry = Registry([cls(ctx) for cls in KINDS], informers)
        ctx.queues = registry
        self.queues = registry.queues
        for informer in informers.values():
            informer.start()
        self.elector = LeaderElector(
            kube,
            namespace=cfg.lease_ns,
            name=cfg.lease_name,
            identity=cfg.holder_identity,
            address=self.advertise(),
            lease_duration=cfg.lease_duration,
            renew_deadline=cfg.renew_deadline,
            retry_period=cfg.retry_period,
            on_started=self._on_lead,
            on_stopped=self._on_follow,
        )
        self.servicer = ControllerServicer(ctx, self.elector)
        self._address_task: asyncio.Task[None] | None = None
        if not self.elector.address and cfg.ready_file:
            self._address_task = asyncio.create_task(self._learn_bound_address())
        self.elector.start()

    async def _on_lead(self) -> None:
        self.leading.set()
        self._leader_task = asyncio.create_task(self._lead(), name="leader-work")

    async def _on_follow(self) -> None:
        self.leading.clear()
        self.ready.clear()
        self.caught_up.clear()
        await cancel_and_wait(self._leader_task)
        self._leader_task = None
        if self.registry is not None:
            await self.registry.stop_queues()

    async def _lead(self) -> None:
        ctx, registry = self.ctx, self.registry
        assert ctx is not None and registry is not None
        started = time.perf_counter()
        while True:
            try:
                await self._take_over(ctx)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("leader start-up failed; retrying", error=str(exc), exc_info=True)
                await asyncio.sleep(1.0)  # back off before rebuilding again
        log.info("leading", seconds=round(time.perf_counter() - started, 3))
        self.ready.set()
        await registry.wait_idle()
        took = time.perf_counter() - started
        metrics.TAKEOVER_SECONDS.set(took)
        log.info("every object reconciled once since taking over", seconds=round(took, 3))
        # Pods and nodes deleted while nobody led: their allocations go now
        # (or at the next periodic collection if ipam is unreachable now).
        try:
            await collect_garbage(ctx)
        except Exception as exc:
            log.warning("garbage collection failed; will retry", error=str(exc))
        self.caught_up.set()
        async with asyncio.TaskGroup() as group:  # one failing cancels the others
            group.create_task(self._periodic(ctx))
            for kind in registry.ordered():
                group.create_task(kind.lead(), name=f"lead-{kind.name}")

    async def _ensure_nb(self, ctx: Context) -> None:
        if self._nb_connect.done() and self._nb_connect.exception() is not None:
            self._nb_connect = asyncio.create_task(ctx.nb.connect())
        await self._nb_connect

    async def _take_over(self, ctx: Context) -> None:
        phases: dict[str, float] = {}
        mark = time.perf_counter()

        def phase(name: str) -> None:
            nonlocal mark
            now = time.perf_counter()
            phases[name] = round(now - mark, 3)
            mark = now

        await self._ensure_nb(ctx)
        phase("nb_connect")
        for informer in ctx.informers.values():
            await informer.synced.wait()
        phase("informers_synced")
        registry = self.registry
        assert registry is not None
        # Subnets and pools first and in full: pods are placed by them.
        await registry.reconcile_first()
        phase("subnets_and_pools")
        await load_allocations(ctx)
        phase("allocations_loaded")
        self.last_resync = await self._resync(ctx)
        self._router_uuid = await ctx.nb.router_uuid(CLUSTER_ROUTER)
        phase("nb_resync")
        registry.start_queues()
        registry.enqueue_rest()
        log.info("take-over phases", **phases)

    async def _resync(self, ctx: Context) -> ResyncResult:
        assert self.registry is not None
        return await ctx.sync.resync(self.registry.desired_rows())

    async def _periodic(self, ctx: Context) -> None:
        cfg = self.config
        next_resync = time.monotonic() + cfg.resync_period if cfg.resync_period else None
        next_gc = time.monotonic() + cfg.gc_period if cfg.gc_period else None
        while True:
            await asyncio.sleep(cfg.usage_period)  # the tick of the NB, resync and GC checks
            try:
                router = await ctx.nb.router_uuid(CLUSTER_ROUTER)
                if router != self._router_uuid:
                    # A new or wiped NB database: rebuild everything now
                    # rather than at the next periodic resync.
                    log.warning("kovn's NB rows are gone or replaced; resyncing")
                    self.last_resync = await self._resync(ctx)
                    self._router_uuid = await ctx.nb.router_uuid(CLUSTER_ROUTER)
                now = time.monotonic()
                if next_resync is not None and now >= next_resync:
                    next_resync = now + cfg.resync_period
                    self.last_resync = await self._resync(ctx)
                if next_gc is not None and now >= next_gc:
                    next_gc = now + cfg.gc_period
                    await collect_garbage(ctx)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("periodic leader work failed", error=str(exc))

    async def stop(self) -> None:
        await cancel_and_wait(getattr(self, "_address_task", None))
        if self.elector is not None:
            await self.elector.stop()
        await self._on_follow()
        ctx = self.ctx
        if ctx is None:
            return
        for informer in ctx.informers.values():
            await informer.stop()
        if self.servicer is not None:
            await self.servicer.close()
        await ctx.sync.writer.stop()
        await cancel_and_wait(self._nb_connect)
        await ctx.nb.close()
        await ctx.ipam.close()
        await ctx.kube.close()


class _Lazy(controller_pb2_grpc.ControllerServicer):
    """Registered before start(); delegates to the servicer built in start()."""

    def __init__(self, service: ControllerService) -> None:
        self.service = service

    def _target(self) -> ControllerServicer:
        if self.service.servicer is None:
            from services.common.errors import Unavailable

            raise Unavailable("the controller is starting", retry_after=0.5)
        return self.service.servicer

    async def GetPodNetwork(self, request: Any, context: Any) -> Any:
        return await self._target().GetPodNetwork(request, context)

    async def GetNodeNetwork(self, request: Any, context: Any) -> Any:
        return await self._target().GetNodeNetwork(request, context)
