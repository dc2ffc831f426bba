"""The DaemonSet controller: one pod per eligible node.

kovn itself ships as DaemonSets (dataplane, pinger), so the sandbox must run
them as a cluster would. A node is eligible when it matches the template's
nodeSelector and required node affinity and its NoSchedule/NoExecute taints
are tolerated, counting the tolerations the controller adds to every
daemon pod (not-ready, unreachable, disk/memory/pid pressure,
unschedulable, and network-unavailable for hostNetwork pods). Each pod is
pinned to its node the way the real controller does it: a required node
affinity term on `metadata.name`, which the scheduler then binds. A node
that appears gets its pod, a deleted or failed pod is replaced, pods on
nodes no longer eligible are deleted. RollingUpdate replaces outdated pods
at most maxUnavailable (default 1) at a time; OnDelete waits for the user.
Status: desiredNumberScheduled, currentNumberScheduled, numberMisscheduled,
numberReady, numberAvailable, numberUnavailable, updatedNumberScheduled,
observedGeneration.

Left out: maxSurge (pods are replaced delete-then-create) and
ControllerRevision objects (`controller-revision-hash` is a hash of the
template, so `kubectl rollout history daemonset` shows nothing).
"""

from __future__ import annotations

import asyncio
import copy
from collections import defaultdict

import structlog

from sandbox.controllers.base import Informer, Key, KeyedController, Obj, Requeue, write_status
from sandbox.controllers.deployment import scaled_value, template_hash
from sandbox.controllers.ownership import claim
from sandbox.controllers.podcontrol import PodControl, pod_path
from sandbox.controllers.podutil import (
    availability,
    available_in,
    controller_ref,
    node_affinity_matches,
    now,
    owner_ref,
    parse_ts,
    selector_matches,
    untolerated_taints,
)
from services.common.kube import KubeClient

log = structlog.get_logger(__name__)

KIND = "DaemonSet"
API_VERSION = "apps/v1"
HASH_LABEL = "controller-revision-hash"
GENERATION_LABEL = "pod-template-generation"
COMPONENT = "daemonset-controller"

#: Added to every daemon pod, as the DaemonSet docs list them.
DEFAULT_TOLERATIONS: list[Obj] = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
]
HOST_NETWORK_TOLERATION: Obj = {
    "key": "node.kubernetes.io/network-unavailable",
    "operator": "Exists",
    "effect": "NoSchedule",
}


def ds_path(ns: str, name: str, sub: str = "") -> str:
    return f"/apis/apps/v1/namespaces/{ns}/daemonsets/{name}" + (f"/{sub}" if sub else "")


# -- pure logic ----------------------------------------------------------------


def daemon_tolerations(pod_spec: Obj) -> list[Obj]:
    """The template's tolerations plus the defaults it lacks."""
    out = list(pod_spec.get("tolerations") or [])
    extra = [*DEFAULT_TOLERATIONS]
    if pod_spec.get("hostNetwork"):
        extra.append(HOST_NETWORK_TOLERATION)
    for t in extra:
        if not any(o.get("key") == t["key"] and o.get("effect") == t["effect"] for o in out):
            out.append(dict(t))
    return out


def should_run(ds: Obj, node: Obj) -> bool:
    spec = ((ds.get("spec") or {}).get("template") or {}).get("spec") or {}
    md = node["metadata"]
    if not node_affinity_matches(spec, md["name"], md.get("labels") or {}):
        return False
    return not untolerated_taints(node, daemon_tolerations(spec))


def pinned_node(pod: Obj) -> str | None:
    """The node a daemon pod is for: where it runs, or where its affinity pins it."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in required.get("nodeSelectorTerms") or []:
        for f in term.get("matchFields") or []:
            if f.get("key") == "metadata.name" and f.get("operator") == "In" and f.get("values"):
                return str(f["values"][0])
    return None


def pod_for_node(ds: Obj, node: str, hash_: str) -> Obj:
    template = copy.deepcopy((ds.get("spec") or {}).get("template") or {})
    tmeta = template.get("metadata") or {}
    labels = dict(tmeta.get("labels") or {})
    labels[HASH_LABEL] = hash_
    labels[GENERATION_LABEL] = str(ds["metadata"].get("generation", 1))
    spec = template.get("spec") or {}
    spec["tolerations"] = daemon_tolerations(spec)
    # The required term naming the node replaces any other: the controller
    # has already checked the template's own terms against this node.
    affinity = spec.setdefault("affinity", {})
    node_aff = affinity.setdefault("nodeAffinity", {})
    node_aff["requiredDuringSchedulingIgnoredDuringExecution"] = {
        "nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
        ]
    }
    md: Obj = {
        "generateName": f"{ds['metadata']['name']}-",
        "namespace": ds["metadata"]["namespace"],
        "labels": labels,
        "ownerReferences": [owner_ref(ds, KIND, API_VERSION)],
    }
    if tmeta.get("annotations"):
        md["annotations"] = tmeta["annotations"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": spec}


def _age(pod: Obj) -> float:
    t = parse_ts(pod["metadata"].get("creationTimestamp"))
    return t.timestamp() if t else 0.0


# -- the controller ------------------------------------------------------------


class DaemonSetController(KeyedController):
    def __init__(self, kube: KubeClient, dss: Informer, nodes: Informer, pods: Informer) -> None:
        super().__init__("daemonset", kube, dss)
        self.dss = dss
        self.nodes = nodes
        self.pods = pods
        self.podctl = PodControl(kube, pods, COMPONENT)
        nodes.handlers.append(self._on_node)
        pods.handlers.append(self.owner_handler(KIND))

    def _on_node(self, kind: str, node: Obj, old: Obj | None) -> None:
        if old is not None and kind != "DELETED":
            keep = ("labels",)
            same_meta = all(old["metadata"].get(k) == node["metadata"].get(k) for k in keep)
            if same_meta and (old.get("spec") or {}).get("taints") == (node.get("spec") or {}).get(
                "taints"
            ):
                return  # a heartbeat: nothing eligibility depends on changed
        self.resync()

    async def reconcile(self, key: Key) -> None:
        ns, name = key
        ds = self.dss.get(ns, name)
        if ds is None:
            return
        spec = ds.get("spec") or {}
        selector = spec.get("selector")
        if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
            return
        owned = await claim(
            self.kube,
            self.pods,
            pod_path,
            ds,
            KIND,
            API_VERSION,
            [p for p in self.pods.objects(ns) if not p["metadata"].get("deletionTimestamp")],
            lambda p: selector_matches(selector, p["metadata"].get("labels")),
        )
        h = template_hash(spec.get("template") or {})
        by_node: dict[str, list[Obj]] = defaultdict(list)
        for p in owned:
            node = pinned_node(p)
            if node:
                by_node[node].append(p)
        nodes = {n["metadata"]["name"]: n for n in self.nodes.objects()}
        eligible = {n for n, node in nodes.items() if should_run(ds, node)}
        deleting = bool(ds["metadata"].get("deletionTimestamp"))
        create: list[str] = []
        delete: list[Obj] = []
        # A node whose daemon pod is still terminating gets its new one once
        # the old is gone (a hostNetwork pod's ports would clash otherwise).
        terminating = {
            pinned_node(p)
            for p in self.pods.objects(ns)
            if p["metadata"].get("deletionTimestamp")
            and (controller_ref(p) or {}).get("uid") == ds["metadata"]["uid"]
        }
        for node in sorted(eligible):
            pods = sorted(by_node.get(node, []), key=_age)
            failed = [p for p in pods if (p.get("status") or {}).get("phase") == "Failed"]
            delete += failed
            pods = [p for p in pods if p not in failed]
            if not pods:
                if node not in terminating:
                    create.append(node)
            else:
                delete += pods[1:]  # one per node: the oldest stays
        for node, pods in by_node.items():
            if node not in eligible:
                delete += pods
        min_ready = int(spec.get("minReadySeconds", 0) or 0)
        at = now()
        if not deleting:
            delete += self._rolling_victims(ds, eligible, by_node, h, min_ready, at)
            await self.podctl.delete(ds, delete)
            await self._create(ds, create, h)
        await self._write_status(ds, eligible, h, min_ready)

    def _rolling_victims(
        self,
        ds: Obj,
        eligible: set[str],
        by_node: dict[str, list[Obj]],
        h: str,
        min_ready: int,
        at: object,
    ) -> list[Obj]:
        strategy = (ds.get("spec") or {}).get("updateStrategy") or {}
        if strategy.get("type", "RollingUpdate") != "RollingUpdate":
            return []
        max_unavailable = scaled_value(
            (strategy.get("rollingUpdate") or {}).get("maxUnavailable", 1), len(eligible), True
        )
        max_unavailable = max(1, max_unavailable)
        outdated_unavailable: list[Obj] = []
        outdated_available: list[Obj] = []
        unavailable = 0
        for node in eligible:
            pods = by_node.get(node) or []
            pod = min(pods, key=_age) if pods else None
            ok = pod is not None and available_in(pod, min_ready, now()) == 0.0
            if not ok:
                unavailable += 1
            if pod is not None and (pod["metadata"].get("labels") or {}).get(HASH_LABEL) != h:
                (outdated_available if ok else outdated_unavailable).append(pod)
        # An outdated pod that is not available costs nothing to replace.
        victims = list(outdated_unavailable)
        budget = max_unavailable - unavailable
        victims += sorted(outdated_available, key=_age)[: max(0, budget)]
        return victims

    async def _create(self, ds: Obj, nodes: list[str], h: str) -> None:
        results = await asyncio.gather(
            *(self.podctl.create(ds, pod_for_node(ds, n, h)) for n in nodes),
            return_exceptions=True,
        )
        for r in results:
            if isinstance(r, BaseException):
                raise r

    async def _write_status(self, ds: Obj, eligible: set[str], h: str, min_ready: int) -> None:
        md = ds["metadata"]
        uid = md["uid"]
        by_node: dict[str, list[Obj]] = defaultdict(list)
        for p in self.pods.objects(md["namespace"]):
            if (controller_ref(p) or {}).get("uid") == uid and not p["metadata"].get(
                "deletionTimestamp"
            ):
                node = pinned_node(p)
                if node:
                    by_node[node].append(p)
        # The oldest daemon pod of each eligible node is the one that counts.
        scheduled = [min(by_node[n], key=_age) for n in eligible if by_node.get(n)]
        ready, available, wake = availability(scheduled, min_ready, now())
        updated = sum(
            1 for p in scheduled if (p["metadata"].get("labels") or {}).get(HASH_LABEL) == h
        )
        status: Obj = {
            "desiredNumberScheduled": len(eligible),
            "currentNumberScheduled": len(scheduled),
            "numberMisscheduled": sum(1 for n in by_node if n not in eligible),
            "numberReady": ready,
            "numberAvailable": available,
            "numberUnavailable": len(eligible) - available,
            "updatedNumberScheduled": updated,
            "observedGeneration": md.get("generation", 1),
        }
        old = ds.get("status") or {}
        if any(old.get(k, 0) != v for k, v in status.items()):
            await write_status(
                self.kube, self.dss, ds_path(md["namespace"], md["name"], "status"), status
            )
        if wake is not None:
            raise Requeue("daemon pods become available", wake + 0.05)
