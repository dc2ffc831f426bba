"""The `default/kubernetes` Service, its Endpoints and EndpointSlice.

Every cluster has them: the API server's own reconciler keeps a Service
`kubernetes` with the first address of the service CIDR, port 443 (named
https) targeting the server's real port, and endpoints naming the address
the server advertises. In-cluster clients (and kovn's load balancers for
them) find the API through it. The sandbox's advertised address is the
control-plane host on the underlay (the root namespace's seat on the node
network); the port is the embedded server's. Re-asserted whenever a watch
shows one of the three changed or gone.
"""

from __future__ import annotations

import ipaddress

import structlog

from sandbox.controllers.base import Informer, Key, KeyedWorkers, Obj
from services.common.kube import KubeClient, KubeError

log = structlog.get_logger(__name__)

NAMESPACE = "default"
NAME = "kubernetes"
SVC_PATH = f"/api/v1/namespaces/{NAMESPACE}/services"
EP_PATH = f"/api/v1/namespaces/{NAMESPACE}/endpoints"
SLICE_PATH = f"/apis/discovery.k8s.io/v1/namespaces/{NAMESPACE}/endpointslices"
LABELS = {"component": "apiserver", "provider": "kubernetes"}


def first_address(service_cidr: str) -> str:
    return str(ipaddress.ip_network(service_cidr).network_address + 1)


def service_body(cluster_ip: str, api_port: int) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": dict(LABELS)},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": cluster_ip,
            "sessionAffinity": "None",
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": api_port}],
        },
    }


def endpoints_body(ip: str, api_port: int) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"},
        },
        "subsets": [
            {
                "addresses": [{"ip": ip}],
                "ports": [{"name": "https", "port": api_port, "protocol": "TCP"}],
            }
        ],
    }


def slice_body(ip: str, api_port: int) -> Obj:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "labels": {"kubernetes.io/service-name": NAME},
        },
        "addressType": "IPv6" if ":" in ip else "IPv4",
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": api_port, "protocol": "TCP"}],
    }


class ApiServiceController:
    """Keeps the three objects as the API server's reconciler would."""

    KEY: Key = (NAMESPACE, NAME)

    def __init__(
        self,
        kube: KubeClient,
        services: Informer,
        endpoints: Informer,
        slices: Informer,
        *,
        service_cidr: str,
        address: str,
        port: int,
    ) -> None:
        self.kube = kube
        self.services = services
        self.endpoints = endpoints
        self.slices = slices
        self.cluster_ip = first_address(service_cidr)
        self.address = address
        self.port = port
        self.workers = KeyedWorkers("apiserver-endpoints", self.reconcile)
        for inf in (services, endpoints, slices):
            inf.handlers.append(self._on_object)

    def _on_object(self, kind: str, obj: Obj, old: Obj | None) -> None:
        md = obj["metadata"]
        if md.get("namespace") == NAMESPACE and md.get("name") == NAME:
            self.workers.add(self.KEY)

    def resync(self) -> None:
        self.workers.add(self.KEY)

    async def reconcile(self, key: Key) -> None:
        await self._service()
        await self._endpoints()
        await self._slice()

    async def _service(self) -> None:
        want = service_body(self.cluster_ip, self.port)
        svc = self.services.get(NAMESPACE, NAME)
        if svc is None:
            try:
                self.services.wrote(await self.kube.create(SVC_PATH, want))
            except KubeError as e:
                if e.status != 409:
                    raise
            return
        if (svc.get("spec") or {}).get("ports") != want["spec"]["ports"]:
            # The embedded server's port is new each start: the target follows it.
            patch = {"spec": {"ports": want["spec"]["ports"]}}
            self.services.wrote(await self.kube.merge_patch(f"{SVC_PATH}/{NAME}", patch))

    async def _put(self, cache: Informer, path: str, want: Obj, fields: tuple[str, ...]) -> None:
        current = cache.get(NAMESPACE, NAME)
        if current is None:
            try:
                cache.wrote(await self.kube.create(path, want))
            except KubeError as e:
                if e.status != 409:
                    raise
            return
        if all(current.get(f) == want.get(f) for f in fields) and all(
            (current["metadata"].get("labels") or {}).get(k) == v
            for k, v in want["metadata"]["labels"].items()
        ):
            return
        want["metadata"]["resourceVersion"] = current["metadata"].get("resourceVersion")
        cache.wrote(await self.kube.replace(f"{path}/{NAME}", want))

    async def _endpoints(self) -> None:
        await self._put(
            self.endpoints, EP_PATH, endpoints_body(self.address, self.port), ("subsets",)
        )

    async def _slice(self) -> None:
        await self._put(
            self.slices,
            SLICE_PATH,
            slice_body(self.address, self.port),
            ("addressType", "endpoints", "ports"),
        )

    async def close(self) -> None:
        await self.workers.close()
