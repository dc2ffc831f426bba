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
from services.common.kube import KubeClient, Obj, connect, resource_path
from services.common.server import Service
from services.controller import annotations as ann
from services.controller import metrics
from services.controller.config import ControllerConfig
from services.controller.context import Context, Informers
from services.controller.egress import EgressReconciler
from services.controller.events import EventRecorder
from services.controller.informer import (
    ADDED,
    DELETED,
    Informer,
    keep_all,
    trim_node,
    trim_pod,
)
from services.controller.ipam_client import IpamClient
from services.controller.leader import LeaderElector
from services.controller.nb.client import NbClient
from services.controller.nb.writer import NbWriter
from services.controller.nodes import NodeReconciler
from services.controller.pods import PodReconciler
from services.controller.resync import collect_garbage, load_allocations, resync
from services.controller.servicer import ControllerServicer
from services.controller.subnets import PoolReconciler, SubnetReconciler
from services.controller.topology import CLUSTER_ROUTER
from services.controller.workqueue import WorkQueue

log = structlog.get_logger(__name__)

#: How long allocations are collected before Subnet usage is refreshed.
USAGE_COALESCE_SECONDS = 1.0


def _pod_signature(pod: Obj | None) -> tuple[Any, ...]:
    """What a pod change must touch to matter to the controller."""
    if pod is None:
        return ()
    meta, spec = pod["metadata"], pod["spec"]
    kovn = tuple(
        sorted(
            (k, v)
            for k, v in (meta.get("annotations") or {}).items()
            if k.startswith((ann.PREFIX, ann.ALIAS_PREFIX))
        )
    )
    return (
        meta.get("uid"),
        spec.get("nodeName"),
        spec.get("hostNetwork"),
        meta.get("deletionTimestamp"),
        kovn,
    )


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
        self.last_resync: Any = None
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
        informers = Informers(
            pods=Informer(kube, "pods", resource_path("", "v1", "pods"), transform=trim_pod),
            nodes=Informer(kube, "nodes", resource_path("", "v1", "nodes"), transform=trim_node),
            namespaces=Informer(
                kube, "namespaces", resource_path("", "v1", "namespaces"), transform=keep_all
            ),
            subnets=Informer(kube, "subnets", resource_path("kovn.io", "v1", "subnets")),
            ippools=Informer(kube, "ippools", resource_path("kovn.io", "v1", "ippools")),
        )
        ctx = self.ctx = Context(
            config=cfg,
            kube=kube,
            ipam=ipam,
            nb=nb,
            writer=writer,
            informers=informers,
            events=EventRecorder(kube),
        )
        self.pods = PodReconciler(ctx)
        self.nodes = NodeReconciler(ctx)
        self.egress = EgressReconciler(ctx)
        self.subnets = SubnetReconciler(ctx, self._subnets_changed)
        self.pools = PoolReconciler(ctx, self._retry_failed_pods)
        self.queues = {
            "subnet": WorkQueue("subnet", self.subnets.reconcile, workers=2),
            "ippool": WorkQueue("ippool", self.pools.reconcile, workers=2),
            "node": WorkQueue("node", self.nodes.reconcile, workers=8),
            "pod": WorkQueue(
                "pod", self.pods.reconcile, workers=cfg.workers, on_permanent=self.pods.report
            ),
            "egress": WorkQueue("egress", self.egress.reconcile, workers=4),
        }
        ctx.egress_dirty = self.queues["egress"].add
        informers.pods.add_listener(self._on_pod)
        informers.nodes.add_listener(lambda t, k, o, n: self.queues["node"].add(k))
        informers.subnets.add_listener(lambda t, k, o, n: self.queues["subnet"].add(k))
        informers.ippools.add_listener(lambda t, k, o, n: self.queues["ippool"].add(k))
        informers.namespaces.add_listener(lambda t, k, o, n: self._retry_failed_pods())
        for informer in informers.all():
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

    def _on_pod(self, etype: str, key: str, old: Obj | None, new: Obj | None) -> None:
        if etype in (ADDED, DELETED) or _pod_signature(old) != _pod_signature(new):
            self.queues["pod"].add(key)

    def _subnets_changed(self) -> None:
        """Pods may now be placeable, and every node's egress match changes."""
        self._retry_failed_pods()
        if self.ctx is not None:
            for node in self.ctx.node_allocations:
                self.queues["egress"].add(node)

    def _retry_failed_pods(self) -> None:
        if self.ctx is None:
            return
        for key in list(self.ctx.failed_pods):
            self.queues["pod"].add(key)

    async def _on_lead(self) -> None:
        self.leading.set()
        self._leader_task = asyncio.create_task(self._lead(), name="leader-work")

    async def _on_follow(self) -> None:
        self.leading.clear()
        self.ready.clear()
        self.caught_up.clear()
        if self._leader_task is not None:
            self._leader_task.cancel()
            try:
                await self._leader_task
            except asyncio.CancelledError:
                pass
            except Exception as exc:  # its failure must not stop the step-down
                log.error("leader work had failed", error=str(exc), exc_info=exc)
            self._leader_task = None
        for queue in self.queues.values():
            await queue.stop()

    async def _lead(self) -> None:
        ctx = self.ctx
        assert ctx is not None
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
        for name in ("subnet", "node", "pod", "egress"):
            await self.queues[name].wait_idle()
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
        async with asyncio.TaskGroup() as group:  # one failing cancels the other
            group.create_task(self._periodic(ctx))
            group.create_task(self._usage(ctx))

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
        for informer in ctx.informers.all():
            await informer.synced.wait()
        phase("informers_synced")
        await self.subnets.ensure_builtin()
        # Subnets and pools first and in full: pods are placed by them.
        for key in sorted(ctx.informers.subnets.cache):
            try:
                await self.subnets.reconcile(key)
            except Exception as exc:
                log.info("subnet deferred to its queue", subnet=key, error=str(exc))
                self.queues["subnet"].add(key)
        for key in sorted(ctx.informers.ippools.cache):
            try:
                await self.pools.reconcile(key)
            except Exception as exc:
                log.info("pool deferred to its queue", pool=key, error=str(exc))
                self.queues["ippool"].add(key)
        phase("subnets_and_pools")
        await load_allocations(ctx)
        phase("allocations_loaded")
        self.last_resync = await resync(ctx)
        self._router_uuid = await ctx.nb.router_uuid(CLUSTER_ROUTER)
        phase("nb_resync")
        for queue in self.queues.values():
            queue.start()
        for key in list(ctx.informers.nodes.cache):
            self.queues["node"].add(key)
        for key in list(ctx.informers.pods.cache):
            self.queues["pod"].add(key)
        log.info("take-over phases", **phases)

    async def _usage(self, ctx: Context) -> None:
        """Subnet usage into status and metrics: shortly after addresses were
        allocated or released (a burst of pods makes one refresh, not one
        each), and every usage_period in any case."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ctx.usage_changed.wait(), self.config.usage_period)
            if ctx.usage_changed.is_set():
                await asyncio.sleep(USAGE_COALESCE_SECONDS)  # rate limit, not a wait for state
            ctx.usage_changed.clear()
            try:
                await self.subnets.refresh_usage()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("subnet usage refresh failed", error=str(exc))

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
                    self.last_resync = await resync(ctx)
                    self._router_uuid = await ctx.nb.router_uuid(CLUSTER_ROUTER)
                now = time.monotonic()
                if next_resync is not None and now >= next_resync:
                    next_resync = now + cfg.resync_period
                    self.last_resync = await resync(ctx)
                if next_gc is not None and now >= next_gc:
                    next_gc = now + cfg.gc_period
                    await collect_garbage(ctx)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("periodic leader work failed", error=str(exc))

    async def stop(self) -> None:
        task = getattr(self, "_address_task", None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.elector is not None:
            await self.elector.stop()
        await self._on_follow()
        ctx = self.ctx
        if ctx is None:
            return
        for informer in ctx.informers.all():
            await informer.stop()
        if self.servicer is not None:
            await self.servicer.close()
        await ctx.writer.stop()
        if not self._nb_connect.done():
            self._nb_connect.cancel()
        with contextlib.suppress(BaseException):
            await self._nb_connect
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
