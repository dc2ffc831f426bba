"""The ReplicaSet controller: keeps spec.replicas pods of the template running.

Deployments work through ReplicaSets, so this is what turns `kubectl create
deployment` into pods. As the upstream controller documents: it counts the
active pods (not finished, not being deleted) its selector matches and it
controls (adopting orphans, releasing pods that stopped matching), creates
the missing ones from the template in slow-start batches (1, 2, 4, ...: a
template the API refuses fails once, not 500 times), deletes surplus ones
picking the cheapest to lose first (unscheduled, pending, not ready, on a
crowded node, ready for the shortest time, most restarts, newest), and
reports replicas, fullyLabeledReplicas, readyReplicas, availableReplicas
(ready for minReadySeconds) and observedGeneration.
"""

from __future__ import annotations

import asyncio
import copy
from collections import Counter
from datetime import datetime

import structlog

from sandbox.controllers import events
from sandbox.controllers.base import Informer, Key, KeyedController, Obj, Requeue, write_status
from sandbox.controllers.ownership import claim
from sandbox.controllers.podcontrol import PodControl, pod_path
from sandbox.controllers.podutil import (
    availability,
    controller_ref,
    is_active,
    is_ready,
    now,
    owner_ref,
    parse_ts,
    ready_since,
    selector_matches,
)
from services.common.kube import KubeClient, KubeError

log = structlog.get_logger(__name__)

KIND = "ReplicaSet"
API_VERSION = "apps/v1"
COMPONENT = "replicaset-controller"
BURST = 500  # the controller's --concurrent burst of creates/deletes per sync
_PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}


def rs_path(ns: str, name: str = "", sub: str = "") -> str:
    base = f"/apis/apps/v1/namespaces/{ns}/replicasets"
    return base + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")


# -- pure logic ----------------------------------------------------------------


def deletion_key(pod: Obj, colocated: int) -> tuple[int, int, int, int, float, int, float]:
    """Sorts pods cheapest-to-delete first, in the upstream controller's order."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    ready = is_ready(pod)
    since = ready_since(pod) if ready else None
    created = parse_ts(pod["metadata"].get("creationTimestamp"))
    restarts = max(
        (c.get("restartCount", 0) for c in status.get("containerStatuses") or []), default=0
    )
    return (
        1 if spec.get("nodeName") else 0,
        _PHASE_ORDER.get(status.get("phase", "Pending"), 0),
        1 if ready else 0,
        -colocated,
        -(since.timestamp() if since else 0.0),
        -int(restarts),
        -(created.timestamp() if created else 0.0),
    )


def pick_victims(pods: list[Obj], count: int, related: list[Obj] | None = None) -> list[Obj]:
    """The `count` pods to delete; `related` (default: `pods`) are the pods
    whose crowding on a node counts (a Deployment's pods of all revisions)."""
    per_node = Counter(
        (p.get("spec") or {}).get("nodeName")
        for p in (related if related is not None else pods)
        if is_active(p)
    )

    def key(p: Obj) -> tuple[int, int, int, int, float, int, float]:
        node = (p.get("spec") or {}).get("nodeName")
        return deletion_key(p, per_node[node] if node else 0)

    return sorted(pods, key=key)[:count]


def status_for(rs: Obj, pods: list[Obj], at: datetime) -> tuple[Obj, float | None]:
    """The ReplicaSet's status from its active pods, and when to look again
    (a ready pod becomes available after minReadySeconds)."""
    spec = rs.get("spec") or {}
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    ready, available, wake = availability(pods, min_ready, at)
    labeled = sum(
        1
        for p in pods
        if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in template_labels.items())
    )
    status: Obj = {
        "replicas": len(pods),
        "fullyLabeledReplicas": labeled,
        "readyReplicas": ready,
        "availableReplicas": available,
        "observedGeneration": rs["metadata"].get("generation", 1),
    }
    old_conditions = (rs.get("status") or {}).get("conditions")
    if old_conditions:
        status["conditions"] = old_conditions
    return status, wake


def pod_from_template(rs: Obj) -> Obj:
    template = copy.deepcopy((rs.get("spec") or {}).get("template") or {})
    tmeta = template.get("metadata") or {}
    md: Obj = {
        "generateName": f"{rs['metadata']['name']}-",
        "namespace": rs["metadata"]["namespace"],
        "labels": tmeta.get("labels") or {},
        "ownerReferences": [owner_ref(rs, KIND, API_VERSION)],
    }
    if tmeta.get("annotations"):
        md["annotations"] = tmeta["annotations"]
    if tmeta.get("finalizers"):
        md["finalizers"] = tmeta["finalizers"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": template.get("spec") or {}}


def _same_status(a: Obj, b: Obj) -> bool:
    keys = (
        "replicas",
        "fullyLabeledReplicas",
        "readyReplicas",
        "availableReplicas",
        "observedGeneration",
        "conditions",
    )
    return all((a.get(k) or 0) == (b.get(k) or 0) for k in keys)


# -- the controller ------------------------------------------------------------


class ReplicaSetController(KeyedController):
    def __init__(self, kube: KubeClient, rss: Informer, pods: Informer) -> None:
        super().__init__("replicaset", kube, rss)
        self.rss = rss
        self.pods = pods
        self.podctl = PodControl(kube, pods, COMPONENT)
        pods.handlers.append(self._on_pod)

    def _on_pod(self, kind: str, pod: Obj, old: Obj | None) -> None:
        ns = pod["metadata"]["namespace"]
        for p in (pod, old):
            if p is None:
                continue
            ref = controller_ref(p)
            if ref is not None:
                if ref.get("kind") == KIND:
                    self.workers.add((ns, ref["name"]))
            elif kind != "DELETED" and is_active(p):
                # An orphan: every ReplicaSet that would adopt it looks at it.
                for rs in self.rss.objects(ns):
                    sel = (rs.get("spec") or {}).get("selector")
                    if selector_matches(sel, p["metadata"].get("labels")):
                        self.workers.add((ns, rs["metadata"]["name"]))

    async def reconcile(self, key: Key) -> None:
        ns, name = key
        rs = self.rss.get(ns, name)
        if rs is None:
            return  # its pods go with it (garbage collection by ownerReferences)
        spec = rs.get("spec") or {}
        selector = spec.get("selector")
        if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
            return  # the API refuses these; never select every pod of the namespace
        candidates = [p for p in self.pods.objects(ns) if is_active(p)]
        pods = await claim(
            self.kube,
            self.pods,
            pod_path,
            rs,
            KIND,
            API_VERSION,
            candidates,
            lambda p: selector_matches(selector, p["metadata"].get("labels")),
        )
        if not rs["metadata"].get("deletionTimestamp"):
            want = int(spec.get("replicas", 1))
            diff = len(pods) - want
            failure: KubeError | None = None
            if diff < 0:
                failure = await self._create(rs, min(-diff, BURST))
            elif diff > 0:
                await self.podctl.delete(rs, pick_victims(pods, min(diff, BURST)))
            pods = [
                p
                for p in self.pods.objects(ns)
                if is_active(p) and (controller_ref(p) or {}).get("uid") == rs["metadata"]["uid"]
            ]
            if failure is not None:
                await self._write_status(rs, pods)
                raise failure
        wake = await self._write_status(rs, pods)
        if wake is not None:
            raise Requeue("pods become available", wake + 0.05)

    async def _write_status(self, rs: Obj, pods: list[Obj]) -> float | None:
        status, wake = status_for(rs, pods, now())
        if not _same_status(status, rs.get("status") or {}):
            md = rs["metadata"]
            await write_status(
                self.kube, self.rss, rs_path(md["namespace"], md["name"], "status"), status
            )
        return wake

    async def _create(self, rs: Obj, count: int) -> KubeError | None:
        """Slow start: batches of 1, 2, 4, ... that stop at the first failure."""
        ns = rs["metadata"]["namespace"]
        body = pod_from_template(rs)
        batch, left = 1, count
        while left > 0:
            n = min(batch, left)
            results = await asyncio.gather(
                *(self.podctl.create(rs, copy.deepcopy(body)) for _ in range(n)),
                return_exceptions=True,
            )
            failed: KubeError | None = None
            for r in results:
                if isinstance(r, KubeError):
                    failed = r
                elif isinstance(r, BaseException):
                    raise r
            if failed is not None:
                log.warning(
                    "pod create failed",
                    replicaset=f"{ns}/{rs['metadata']['name']}",
                    error=str(failed),
                )
                await events.record(
                    self.kube,
                    rs,
                    "FailedCreate",
                    f"Error creating: {failed}",
                    component=COMPONENT,
                    warning=True,
                )
                return failed
            left -= n
            batch *= 2
        return None
