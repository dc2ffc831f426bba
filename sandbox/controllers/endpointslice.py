"""The EndpointSlice controller: a Service's ready backends, in slices.

kovn programs OVN load balancers from EndpointSlices, and kube-proxy-less
clients read them too, so every Service with a selector gets them as the
upstream controller writes them: one endpoint per pod that matches the
selector, is not finished and has an IP of the slice's family; conditions
ready (pod Ready and not terminating, or always with
publishNotReadyAddresses), serving (pod Ready, terminating or not) and
terminating (deletionTimestamp set); nodeName and a Pod targetRef; the
Service's ports with named targetPorts resolved against each pod's
containerPorts, so pods that resolve a name differently land in different
slices. A slice holds at most 100 endpoints, is named `<service>-<random>`
(generateName), is labelled `kubernetes.io/service-name` and
`endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io`,
and is owned by the Service (so it goes with it). A Service with no
endpoints keeps one empty placeholder slice.

Churn is kept low the way upstream does: endpoints stay in the slice that
has them, a changed slice is filled from the new endpoints before an
unchanged one is touched, and only what is left over makes new slices.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterable

import structlog

from sandbox.controllers.base import Informer, Key, KeyedController, Obj
from sandbox.controllers.podutil import (
    find_port,
    is_ready,
    is_terminal,
    map_selector_matches,
    pod_ips,
)
from services.common.kube import KubeClient, KubeError

log = structlog.get_logger(__name__)

MAX_ENDPOINTS = 100
SERVICE_NAME = "kubernetes.io/service-name"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
CONTROLLER = "endpointslice-controller.k8s.io"
HEADLESS = "service.kubernetes.io/headless"

Group = tuple[str, str]  # (addressType, the ports as canonical JSON)


def slices_path(ns: str, name: str = "") -> str:
    base = f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices"
    return f"{base}/{name}" if name else base


def services_for_pod(services: Informer, pod: Obj, old: Obj | None) -> Iterable[Key]:
    """The Services whose selector matches the pod now or before the change."""
    ns = pod["metadata"]["namespace"]
    labels = [p["metadata"].get("labels") for p in (pod, old) if p is not None]
    for svc in services.objects(ns):
        sel = (svc.get("spec") or {}).get("selector")
        if any(map_selector_matches(sel, lab) for lab in labels):
            yield (ns, svc["metadata"]["name"])


def families(svc: Obj) -> list[str]:
    spec = svc.get("spec") or {}
    fams = spec.get("ipFamilies") or []
    return [f for f in fams if f in ("IPv4", "IPv6")] or ["IPv4"]


def _family_ip(ips: list[str], family: str) -> str | None:
    for ip in ips:
        if (":" in ip) == (family == "IPv6"):
            return ip
    return None


def endpoint_ports(svc: Obj, pod: Obj) -> list[Obj]:
    out = []
    for sp in (svc.get("spec") or {}).get("ports") or []:
        port = find_port(pod, sp)
        if port is None:
            continue  # a named port this pod lacks: the pod serves the others
        p: Obj = {"name": sp.get("name", ""), "port": port, "protocol": sp.get("protocol", "TCP")}
        if sp.get("appProtocol"):
            p["appProtocol"] = sp["appProtocol"]
        out.append(p)
    return out


def ports_key(ports: list[Obj] | None) -> str:
    norm = sorted(
        (
            {
                "name": p.get("name") or "",
                "port": p.get("port"),
                "protocol": p.get("protocol", "TCP"),
                "appProtocol": p.get("appProtocol"),
            }
            for p in ports or []
        ),
        key=lambda p: (p["name"], p["protocol"], p["port"] or 0),
    )
    return json.dumps(norm, sort_keys=True)


def pod_endpoint(svc: Obj, pod: Obj, ip: str) -> Obj:
    publish = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
    terminating = bool(pod["metadata"].get("deletionTimestamp"))
    ready = is_ready(pod)
    md, spec = pod["metadata"], pod.get("spec") or {}
    ep: Obj = {
        "addresses": [ip],
        "conditions": {
            "ready": publish or (ready and not terminating),
            "serving": publish or ready,
            "terminating": terminating,
        },
        "targetRef": {
            "kind": "Pod",
            "namespace": md["namespace"],
            "name": md["name"],
            "uid": md["uid"],
        },
    }
    if spec.get("nodeName"):
        ep["nodeName"] = spec["nodeName"]
    if spec.get("hostname") and spec.get("subdomain") == svc["metadata"]["name"]:
        ep["hostname"] = spec["hostname"]
    return ep


def desired(svc: Obj, pods: list[Obj]) -> dict[Group, dict[str, tuple[Obj, list[Obj]]]]:
    """Per (addressType, ports): endpoint key -> (endpoint, its ports)."""
    sel = (svc.get("spec") or {}).get("selector")
    out: dict[Group, dict[str, tuple[Obj, list[Obj]]]] = {}
    for pod in pods:
        if is_terminal(pod) or not map_selector_matches(sel, pod["metadata"].get("labels")):
            continue
        ips = pod_ips(pod)
        ports = endpoint_ports(svc, pod)
        for fam in families(svc):
            ip = _family_ip(ips, fam)
            if ip is None:
                continue
            group = (fam, ports_key(ports))
            out.setdefault(group, {})[ip] = (pod_endpoint(svc, pod, ip), ports)
    return out


def _ep_key(ep: Obj) -> str:
    addrs = ep.get("addresses") or [""]
    return str(addrs[0])


def plan(
    existing: list[Obj],
    want: dict[Group, dict[str, tuple[Obj, list[Obj]]]],
    primary_family: str,
    max_endpoints: int = MAX_ENDPOINTS,
) -> tuple[list[tuple[str, list[Obj], list[Obj]]], list[tuple[Obj, list[Obj]]], list[Obj]]:
    """(creates as (addressType, ports, endpoints), updates as (slice, endpoints), deletes)."""
    creates: list[tuple[str, list[Obj], list[Obj]]] = []
    updates: list[tuple[Obj, list[Obj]]] = []
    deletes: list[Obj] = []
    if not any(want.values()):
        # No endpoints at all: exactly one empty placeholder slice stays.
        keep = next(
            (
                s
                for s in existing
                if not s.get("endpoints")
                and not s.get("ports")
                and s.get("addressType") == primary_family
            ),
            None,
        )
        if keep is None:
            creates.append((primary_family, [], []))
        deletes = [s for s in existing if s is not keep]
        return creates, updates, deletes
    by_group: dict[Group, list[Obj]] = {}
    for s in sorted(existing, key=lambda s: s["metadata"]["name"]):
        group = (str(s.get("addressType")), ports_key(s.get("ports")))
        if want.get(group):
            by_group.setdefault(group, []).append(s)
        else:
            deletes.append(s)
    for group, eps in want.items():
        if not eps:
            continue
        remaining = dict(eps)
        kept: list[tuple[Obj, list[Obj], bool]] = []
        for s in by_group.get(group, []):
            new: list[Obj] = []
            for ep in s.get("endpoints") or []:
                k = _ep_key(ep)
                if k in remaining and len(new) < max_endpoints:
                    new.append(remaining.pop(k)[0])
            kept.append((s, new, new != (s.get("endpoints") or [])))
        # Fill slices being written anyway first, then the fullest others.
        order = sorted(range(len(kept)), key=lambda i: (not kept[i][2], -len(kept[i][1])))
        for i in order:
            s, new, changed = kept[i]
            while remaining and len(new) < max_endpoints:
                k = next(iter(remaining))
                new.append(remaining.pop(k)[0])
                changed = True
            kept[i] = (s, new, changed)
        for s, new, changed in kept:
            if not new:
                deletes.append(s)
            elif changed:
                updates.append((s, new))
        rest = [e for e, _ in remaining.values()]
        ports = next(iter(eps.values()))[1]
        for i in range(0, len(rest), max_endpoints):
            creates.append((group[0], ports, rest[i : i + max_endpoints]))
    return creates, updates, deletes


def slice_labels(svc: Obj) -> dict[str, str]:
    labels = {
        k: v
        for k, v in (svc["metadata"].get("labels") or {}).items()
        if k not in (SERVICE_NAME, MANAGED_BY, HEADLESS)
    }
    labels[SERVICE_NAME] = svc["metadata"]["name"]
    labels[MANAGED_BY] = CONTROLLER
    if (svc.get("spec") or {}).get("clusterIP") == "None":
        labels[HEADLESS] = ""
    return labels


def service_owner(svc: Obj) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "name": svc["metadata"]["name"],
        "uid": svc["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _api_ports(ports: list[Obj]) -> list[Obj]:
    return [{k: v for k, v in p.items() if v not in (None, "") or k == "port"} for p in ports]


# -- the controller ------------------------------------------------------------


class EndpointSliceController(KeyedController):
    def __init__(
        self, kube: KubeClient, services: Informer, pods: Informer, slices: Informer
    ) -> None:
        super().__init__("endpointslice", kube, services)
        self.services = services
        self.pods = pods
        self.slices = slices
        pods.handlers.append(self._on_pod)
        slices.handlers.append(self._on_slice)

    def _on_pod(self, kind: str, pod: Obj, old: Obj | None) -> None:
        for key in services_for_pod(self.services, pod, old):
            self.workers.add(key)

    def _on_slice(self, kind: str, es: Obj, old: Obj | None) -> None:
        name = (es["metadata"].get("labels") or {}).get(SERVICE_NAME)
        if name:
            self.workers.add((es["metadata"]["namespace"], name))

    def owned_slices(self, ns: str, name: str, uid: str | None) -> list[Obj]:
        out = []
        for s in self.slices.objects(ns):
            labels = s["metadata"].get("labels") or {}
            if labels.get(SERVICE_NAME) == name and labels.get(MANAGED_BY) == CONTROLLER:
                out.append(s)
        return out

    async def reconcile(self, key: Key) -> None:
        ns, name = key
        svc = self.services.get(ns, name)
        spec = (svc or {}).get("spec") or {}
        if svc is None or not spec.get("selector") or spec.get("type") == "ExternalName":
            # Gone (its slices go with it by ownerReference) or not ours to manage.
            if svc is None or svc["metadata"].get("deletionTimestamp"):
                return
            await asyncio.gather(*(self._delete(s) for s in self.owned_slices(ns, name, None)))
            return
        existing = self.owned_slices(ns, name, svc["metadata"]["uid"])
        want = desired(svc, self.pods.objects(ns))
        creates, updates, deletes = plan(existing, want, families(svc)[0])
        labels = slice_labels(svc)
        owner = service_owner(svc)
        relabel = [
            s
            for s in existing
            if s not in deletes
            and s not in (u for u, _ in updates)
            and (
                s["metadata"].get("labels") != labels
                or s["metadata"].get("ownerReferences") != [owner]
            )
        ]
        writes = [self._update(s, eps, labels, owner) for s, eps in updates]
        writes += [self._update(s, s.get("endpoints") or [], labels, owner) for s in relabel]
        writes += [self._create(svc, fam, ports, eps, labels, owner) for fam, ports, eps in creates]
        writes += [self._delete(s) for s in deletes]
        results = await asyncio.gather(*writes, return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r

    async def _create(
        self,
        svc: Obj,
        family: str,
        ports: list[Obj],
        eps: list[Obj],
        labels: dict[str, str],
        owner: Obj,
    ) -> None:
        body = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "generateName": f"{svc['metadata']['name']}-",
                "namespace": svc["metadata"]["namespace"],
                "labels": labels,
                "ownerReferences": [owner],
            },
            "addressType": family,
            "endpoints": eps,
            "ports": _api_ports(ports),
        }
        self.slices.wrote(await self.kube.create(slices_path(svc["metadata"]["namespace"]), body))

    async def _update(self, es: Obj, eps: list[Obj], labels: dict[str, str], owner: Obj) -> None:
        body = copy.deepcopy(es)
        body["metadata"]["labels"] = labels
        body["metadata"]["ownerReferences"] = [owner]
        body["endpoints"] = eps
        md = es["metadata"]
        try:
            out = await self.kube.replace(slices_path(md["namespace"], md["name"]), body)
        except KubeError as e:
            if e.status == 404:
                self.slices.removed(es)
            raise
        self.slices.wrote(out)

    async def _delete(self, es: Obj) -> None:
        md = es["metadata"]
        try:
            await self.kube.delete(
                slices_path(md["namespace"], md["name"]), {"preconditions": {"uid": md["uid"]}}
            )
        except KubeError as e:
            if e.status not in (404, 409):
                raise
        self.slices.removed(es)
