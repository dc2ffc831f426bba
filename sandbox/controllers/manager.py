"""Runs every controller stand-in over one set of shared informers.

One watch per resource feeds all controllers that read it (pods come from
the agents' single pod watch), as kube-controller-manager shares informers.
Workers start only when every cache has synced, so no controller acts on a
partial view (a ReplicaSet seen before its pods would create them again);
then every object is reconciled once, and again on a slow resync timer as
a safety net for a missed event.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlparse

import structlog

from sandbox.controllers.apiservice import ApiServiceController
from sandbox.controllers.base import Controller, Informer
from sandbox.controllers.daemonset import DaemonSetController
from sandbox.controllers.deployment import DeploymentController
from sandbox.controllers.endpoints import EndpointsController
from sandbox.controllers.endpointslice import EndpointSliceController
from sandbox.controllers.job import JobController
from sandbox.controllers.replicaset import ReplicaSetController
from services.common.kube import KubeClient
from services.common.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

RESYNC_SECONDS = 300.0
DEFAULT_SERVICE_CIDR = "10.96.0.0/16"  # what sandbox.kubeapi allocates from by default


def api_port(api_url: str) -> int:
    u = urlparse(api_url)
    return u.port or (443 if u.scheme == "https" else 80)


class ControllerManager:
    def __init__(
        self,
        kube: KubeClient,
        *,
        api_address: str,
        api_port: int,
        service_cidr: str = DEFAULT_SERVICE_CIDR,
    ) -> None:
        self.kube = kube
        # Fed by the agents' pod watch (see `feed_pod`), never run here.
        self.pods = Informer(kube, "/api/v1/pods", "Pod", "v1")
        self.replicasets = Informer(kube, "/apis/apps/v1/replicasets", "ReplicaSet", "apps/v1")
        self.deployments = Informer(kube, "/apis/apps/v1/deployments", "Deployment", "apps/v1")
        self.daemonsets = Informer(kube, "/apis/apps/v1/daemonsets", "DaemonSet", "apps/v1")
        self.jobs = Informer(kube, "/apis/batch/v1/jobs", "Job", "batch/v1")
        self.nodes = Informer(kube, "/api/v1/nodes", "Node", "v1")
        self.services = Informer(kube, "/api/v1/services", "Service", "v1")
        self.endpoints = Informer(kube, "/api/v1/endpoints", "Endpoints", "v1")
        self.slices = Informer(
            kube, "/apis/discovery.k8s.io/v1/endpointslices", "EndpointSlice", "discovery.k8s.io/v1"
        )
        self.watched = [
            self.replicasets,
            self.deployments,
            self.daemonsets,
            self.jobs,
            self.nodes,
            self.services,
            self.endpoints,
            self.slices,
        ]
        self.controllers: list[Controller] = [
            ReplicaSetController(kube, self.replicasets, self.pods),
            DeploymentController(kube, self.deployments, self.replicasets, self.pods),
            DaemonSetController(kube, self.daemonsets, self.nodes, self.pods),
            JobController(kube, self.jobs, self.pods),
            EndpointSliceController(kube, self.services, self.pods, self.slices),
            EndpointsController(kube, self.services, self.pods, self.endpoints),
            ApiServiceController(
                kube,
                self.services,
                self.endpoints,
                self.slices,
                service_cidr=service_cidr,
                address=api_address,
                port=api_port,
            ),
        ]
        self._tasks: list[asyncio.Task[None]] = []

    def feed_pod(self, kind: str, pod: dict[str, Any]) -> None:
        self.pods.apply(kind, pod)

    def pods_synced(self) -> None:
        self.pods.synced.set()

    async def start(self) -> None:
        """Start the watches; once all caches are synced, the workers."""
        self._tasks = [
            asyncio.create_task(i.run(), name=f"informer-{i.kind}") for i in self.watched
        ]
        await asyncio.gather(*(i.synced.wait() for i in [*self.watched, self.pods]))
        for c in self.controllers:
            c.workers.start()
            c.resync()
        self._tasks.append(asyncio.create_task(self._resync_forever(), name="controllers-resync"))
        log.info("controllers started", controllers=[c.workers.name for c in self.controllers])

    async def _resync_forever(self) -> None:
        while True:
            await asyncio.sleep(RESYNC_SECONDS)
            for c in self.controllers:
                c.resync()

    async def close(self) -> None:
        await asyncio.gather(*(cancel_and_wait(t) for t in self._tasks))
        await asyncio.gather(*(c.close() for c in self.controllers))
