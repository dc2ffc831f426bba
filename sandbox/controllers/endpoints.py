"""The Endpoints controller: core v1 Endpoints named after each Service.

Older clients (and `kubectl get endpoints`, `kubectl describe service`)
read Endpoints rather than EndpointSlices, so every Service with a selector
also gets the classic object, as the upstream controller writes it: the
pods that match the selector and have an IP of the Service's primary
family, ready ones under `addresses`, the others under `notReadyAddresses`
(all under `addresses` with publishNotReadyAddresses, and terminating pods
left out unless that is set), subsets grouped by identical resolved ports,
labelled `endpointslice.kubernetes.io/skip-mirror` so the slice mirroring
does not copy them back. The object goes when its Service goes.
"""

from __future__ import annotations

import json

import structlog

from sandbox.controllers.base import Informer, Key, KeyedController, Obj
from sandbox.controllers.endpointslice import families, services_for_pod
from sandbox.controllers.podutil import (
    find_port,
    is_ready,
    is_terminal,
    map_selector_matches,
    pod_ips,
)
from services.common.kube import KubeClient, KubeError

log = structlog.get_logger(__name__)

SKIP_MIRROR = "endpointslice.kubernetes.io/skip-mirror"


def endpoints_path(ns: str, name: str = "") -> str:
    base = f"/api/v1/namespaces/{ns}/endpoints"
    return f"{base}/{name}" if name else base


def subsets_for(svc: Obj, pods: list[Obj]) -> list[Obj]:
    spec = svc.get("spec") or {}
    sel = spec.get("selector")
    publish = bool(spec.get("publishNotReadyAddresses"))
    family = families(svc)[0]
    groups: dict[str, tuple[list[Obj], list[Obj], list[Obj]]] = {}
    for pod in pods:
        md = pod["metadata"]
        if is_terminal(pod) or not map_selector_matches(sel, md.get("labels")):
            continue
        terminating = bool(md.get("deletionTimestamp"))
        if terminating and not publish:
            continue
        ip = next((i for i in pod_ips(pod) if (":" in i) == (family == "IPv6")), None)
        if ip is None:
            continue
        addr: Obj = {
            "ip": ip,
            "targetRef": {
                "kind": "Pod",
                "namespace": md["namespace"],
                "name": md["name"],
                "uid": md["uid"],
            },
        }
        pspec = pod.get("spec") or {}
        if pspec.get("nodeName"):
            addr["nodeName"] = pspec["nodeName"]
        if pspec.get("hostname") and pspec.get("subdomain") == svc["metadata"]["name"]:
            addr["hostname"] = pspec["hostname"]
        ports: list[Obj] = []
        for sp in spec.get("ports") or []:
            port = find_port(pod, sp)
            if port is None:
                continue
            p: Obj = {"port": port, "protocol": sp.get("protocol", "TCP")}
            if sp.get("name"):
                p["name"] = sp["name"]
            if sp.get("appProtocol"):
                p["appProtocol"] = sp["appProtocol"]
            ports.append(p)
        if not ports and spec.get("ports"):
            continue  # serves none of the Service's ports
        ports.sort(key=lambda p: (p.get("name", ""), p["port"], p["protocol"]))
        key = json.dumps(ports, sort_keys=True)
        ready_list, not_ready, _ = groups.setdefault(key, ([], [], ports))
        (ready_list if publish or (is_ready(pod) and not terminating) else not_ready).append(addr)
    out = []
    for key in sorted(groups):
        ready_list, not_ready, ports = groups[key]
        subset: Obj = {}
        if ready_list:
            subset["addresses"] = sorted(ready_list, key=lambda a: (a["ip"], a["targetRef"]["uid"]))
        if not_ready:
            subset["notReadyAddresses"] = sorted(
                not_ready, key=lambda a: (a["ip"], a["targetRef"]["uid"])
            )
        if ports:
            subset["ports"] = ports
        out.append(subset)
    return out


class EndpointsController(KeyedController):
    def __init__(
        self, kube: KubeClient, services: Informer, pods: Informer, endpoints: Informer
    ) -> None:
        super().__init__("endpoints", kube, services)
        self.services = services
        self.pods = pods
        self.endpoints = endpoints
        endpoints.handlers.append(self.enqueue)  # named after its Service
        pods.handlers.append(self._on_pod)

    def _on_pod(self, kind: str, pod: Obj, old: Obj | None) -> None:
        for key in services_for_pod(self.services, pod, old):
            self.workers.add(key)

    async def reconcile(self, key: Key) -> None:
        ns, name = key
        svc = self.services.get(ns, name)
        current = self.endpoints.get(ns, name)
        if svc is None:
            ours = current is not None and SKIP_MIRROR in (current["metadata"].get("labels") or {})
            if ours and current is not None:
                try:
                    await self.kube.delete(endpoints_path(ns, name))
                except KubeError as e:
                    if e.status != 404:
                        raise
                self.endpoints.removed(current)
            return
        spec = svc.get("spec") or {}
        if not spec.get("selector") or spec.get("type") == "ExternalName":
            return  # someone else's Endpoints (or none at all)
        labels = {k: v for k, v in (svc["metadata"].get("labels") or {}).items()}
        labels[SKIP_MIRROR] = "true"
        subsets = subsets_for(svc, self.pods.objects(ns))
        if current is not None and (
            (current.get("subsets") or []) == subsets
            and current["metadata"].get("labels") == labels
        ):
            return
        body: Obj = {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "subsets": subsets,
        }
        if current is not None:
            body["metadata"]["resourceVersion"] = current["metadata"].get("resourceVersion")
            if current["metadata"].get("annotations"):
                body["metadata"]["annotations"] = current["metadata"]["annotations"]
            self.endpoints.wrote(await self.kube.replace(endpoints_path(ns, name), body))
        else:
            try:
                self.endpoints.wrote(await self.kube.create(endpoints_path(ns), body))
            except KubeError as e:
                if e.status != 409:
                    raise
                # Created meanwhile (our watch lags): read it and go again.
                self.endpoints.wrote(await self.kube.get(endpoints_path(ns, name)))
                raise
