"""The small rules about pods, selectors and owners that every controller shares.

Label selectors (matchLabels + matchExpressions), controller references,
whether a pod is active, ready or available, named-port resolution, taints
against tolerations and node affinity: each is defined once in the
Kubernetes API reference and used by several controllers (ReplicaSet,
Deployment, DaemonSet, EndpointSlice, Endpoints), so they live here as pure
functions that the unit tests can pin down.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]


def now() -> datetime:
    return datetime.now(UTC)


def ts(when: datetime | None = None) -> str:
    return (when or now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_ts(s: str | None) -> datetime | None:
    if not s:
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ"):
        try:
            return datetime.strptime(s, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


# -- label selectors -----------------------------------------------------------


def selector_matches(selector: Obj | None, labels: dict[str, str] | None) -> bool:
    """A metav1.LabelSelector against labels. An empty selector matches
    everything; a missing (None) one matches nothing, as for workloads."""
    if selector is None:
        return False
    labels = labels or {}
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for req in selector.get("matchExpressions") or []:
        key, op, values = req.get("key", ""), req.get("operator"), req.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def map_selector_matches(selector: dict[str, str] | None, labels: dict[str, str] | None) -> bool:
    """A Service's spec.selector (a plain map; empty or missing selects nothing here,
    since such a Service's endpoints are managed by someone else)."""
    if not selector:
        return False
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())


# -- owners --------------------------------------------------------------------


def controller_ref(obj: Obj) -> Obj | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller"):
            return ref
    return None


def owner_ref(owner: Obj, kind: str, api_version: str) -> Obj:
    """The controller reference a controller puts on what it creates."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


# -- pods ----------------------------------------------------------------------


def is_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def is_active(pod: Obj) -> bool:
    """Counted by workload controllers: not finished, not being deleted."""
    return not is_terminal(pod) and not pod["metadata"].get("deletionTimestamp")


def ready_condition(pod: Obj) -> Obj | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return dict(c)
    return None


def is_ready(pod: Obj) -> bool:
    c = ready_condition(pod)
    return c is not None and c.get("status") == "True"


def ready_since(pod: Obj) -> datetime | None:
    c = ready_condition(pod)
    if c is None or c.get("status") != "True":
        return None
    return parse_ts(c.get("lastTransitionTime")) or parse_ts(
        pod["metadata"].get("creationTimestamp")
    )


def available_in(pod: Obj, min_ready_seconds: int, at: datetime) -> float | None:
    """Seconds until the pod counts as available (0: it is); None: not ready."""
    if not is_ready(pod):
        return None
    if min_ready_seconds <= 0:
        return 0.0
    since = ready_since(pod)
    if since is None:
        return 0.0
    left = min_ready_seconds - (at - since).total_seconds()
    return max(0.0, left)


def availability(
    pods: list[Obj], min_ready_seconds: int, at: datetime
) -> tuple[int, int, float | None]:
    """(ready, available, seconds until the next ready one becomes available or
    None): the counts a workload's status reports, and when it must look again,
    since nothing else wakes its controller when minReadySeconds have passed."""
    ready = available = 0
    wake: float | None = None
    for p in pods:
        if is_ready(p):
            ready += 1
        left = available_in(p, min_ready_seconds, at)
        if left == 0.0:
            available += 1
        elif left is not None:
            wake = left if wake is None else min(wake, left)
    return ready, available, wake


def pod_ips(pod: Obj) -> list[str]:
    status = pod.get("status") or {}
    ips = [p.get("ip") for p in status.get("podIPs") or [] if p.get("ip")]
    if not ips and status.get("podIP"):
        ips = [status["podIP"]]
    return [str(ip) for ip in ips]


def find_port(pod: Obj, svc_port: Obj) -> int | None:
    """The Service port's targetPort on this pod: a number as is, a name looked
    up among the pod's container ports of the same protocol (None: absent)."""
    target = svc_port.get("targetPort", svc_port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    proto = svc_port.get("protocol", "TCP")
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == target and p.get("protocol", "TCP") == proto:
                port = p.get("containerPort")
                return int(port) if isinstance(port, int) else None
    return None


# -- nodes ---------------------------------------------------------------------


def tolerates(tolerations: list[Obj], taint: Obj) -> bool:
    for t in tolerations:
        if t.get("effect") and t.get("effect") != taint.get("effect"):
            continue
        op = t.get("operator", "Equal")
        if not t.get("key"):
            if op == "Exists":
                return True
            continue
        if t.get("key") != taint.get("key"):
            continue
        if op == "Exists" or t.get("value", "") == taint.get("value", ""):
            return True
    return False


def untolerated_taints(node: Obj, tolerations: list[Obj]) -> list[Obj]:
    """The node's scheduling taints (NoSchedule, NoExecute) the pod does not tolerate."""
    taints = (node.get("spec") or {}).get("taints") or []
    return [
        t
        for t in taints
        if t.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tolerations, t)
    ]


def _requirement(req: Obj, value: str | None) -> bool:
    op, values = req.get("operator"), req.get("values") or []
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt") and value is not None and values:
        try:
            a, b = int(value), int(values[0])
        except ValueError:
            return False
        return a > b if op == "Gt" else a < b
    return False


def node_affinity_matches(pod_spec: Obj, node_name: str, labels: dict[str, str]) -> bool:
    """nodeSelector and requiredDuringSchedulingIgnoredDuringExecution node
    affinity (terms ORed, requirements within a term ANDed; matchFields
    knows metadata.name only, as the API allows)."""
    for k, v in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    required = ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms")
    if not terms:
        return True
    for term in terms:
        exprs = term.get("matchExpressions") or []
        fields = term.get("matchFields") or []
        if not exprs and not fields:
            continue  # an empty term matches no node
        if all(_requirement(r, labels.get(r.get("key", ""))) for r in exprs) and all(
            _requirement(r, node_name if r.get("key") == "metadata.name" else None) for r in fields
        ):
            return True
    return False


def node_ready(node: Obj) -> bool:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False
