# ruff: noqa: E501  (messages quote the real API server word for word)
"""The Pod kind: the defaults, validation and immutability the real API
server applies, the QoS class it reports, and its graceful deletion.

Pods are what kovn wires up, so what the server fills in (restartPolicy,
serviceAccountName, imagePullPolicy, ...) and refuses must match a real
cluster's, or the agents would be tested against objects no cluster has.
"""

from __future__ import annotations

import json
from typing import Any

from .allocation import KindContext
from .errors import Cause
from .resources import Obj
from .validation import show


def _probe_defaults(probe: Any) -> None:
    if not isinstance(probe, dict):
        return
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)
    http = probe.get("httpGet")
    if isinstance(http, dict):
        http.setdefault("path", "/")
        http.setdefault("scheme", "HTTP")


def _container_defaults(c: Any) -> None:
    if not isinstance(c, dict):
        return
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    c.setdefault("resources", {})
    tag = str(c.get("image", "")).rsplit("/", 1)[-1]
    latest = ":" not in tag or tag.endswith(":latest")
    c.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
    for p in c.get("ports") or []:
        if isinstance(p, dict):
            p.setdefault("protocol", "TCP")
    for k in ("livenessProbe", "readinessProbe", "startupProbe"):
        _probe_defaults(c.get(k))


def pod_spec_defaults(spec: Obj) -> None:
    """The defaults of a PodSpec (k8s.io/api core/v1), wherever it appears:
    in a Pod, and in the pod template of a Deployment, Job, ... alike."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    for k in ("initContainers", "containers"):
        for c in spec.get(k) or []:
            _container_defaults(c)


def template_defaults(template: Any) -> None:
    """A PodTemplateSpec's defaults: its pod spec's (nothing of the Pod's
    own admission: no service account, priority or service links)."""
    if isinstance(template, dict):
        spec = template.setdefault("spec", {})
        if isinstance(spec, dict):
            pod_spec_defaults(spec)


def _pod_defaults(pod: Obj) -> None:
    spec = pod.setdefault("spec", {})
    pod_spec_defaults(spec)
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("priority", 0)
    if "serviceAccountName" not in spec:
        spec["serviceAccountName"] = spec.get("serviceAccount", "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])


def _pod_validate(pod: Obj) -> list[Cause]:
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return [("spec", "FieldValueRequired", "Required value")]
    containers = spec.get("containers")
    if not containers:
        return [("spec.containers", "FieldValueRequired", "Required value")]
    causes: list[Cause] = []
    names = set()
    for i, c in enumerate(containers):
        if not isinstance(c, dict):
            causes.append(
                (
                    f"spec.containers[{i}]",
                    "FieldValueTypeInvalid",
                    "Invalid value: must be an object",
                )
            )
            continue
        if not c.get("name"):
            causes.append((f"spec.containers[{i}].name", "FieldValueRequired", "Required value"))
        elif c["name"] in names:
            causes.append(
                (
                    f"spec.containers[{i}].name",
                    "FieldValueDuplicate",
                    f"Duplicate value: {show(c['name'])}",
                )
            )
        names.add(c.get("name"))
        if not c.get("image"):
            causes.append((f"spec.containers[{i}].image", "FieldValueRequired", "Required value"))
    rp = spec.get("restartPolicy")
    if rp not in ("Always", "OnFailure", "Never"):
        causes.append(
            (
                "spec.restartPolicy",
                "FieldValueNotSupported",
                f'Unsupported value: {show(rp)}: supported values: "Always", "OnFailure", "Never"',
            )
        )
    return causes


_POD_UPDATE_FORBIDDEN = "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"


def _without_images(containers: Any) -> Any:
    if not isinstance(containers, list):
        return containers
    return [
        {k: v for k, v in c.items() if k != "image"} if isinstance(c, dict) else c
        for c in containers
    ]


def _pod_immutable(old: Obj, new: Obj) -> list[Cause]:
    """A pod's spec is immutable but for images, tolerations and deadlines;
    binding it to a node goes through pods/binding, not an update."""
    o, n = dict(old.get("spec") or {}), dict(new.get("spec") or {})
    for s in (o, n):
        for k in ("containers", "initContainers"):
            if k in s:
                s[k] = _without_images(s[k])
        for k in ("tolerations", "activeDeadlineSeconds", "terminationGracePeriodSeconds"):
            s.pop(k, None)
    if o != n:
        return [("spec", "FieldValueForbidden", _POD_UPDATE_FORBIDDEN)]
    return []


def _qos(pod: Obj) -> str:
    reqs = [
        (c.get("resources") or {})
        for c in pod["spec"].get("containers") or []
        if isinstance(c, dict)
    ]
    if not any(r.get("requests") or r.get("limits") for r in reqs):
        return "BestEffort"
    if all(r.get("limits") and r.get("requests", r.get("limits")) == r.get("limits") for r in reqs):
        return "Guaranteed"
    return "Burstable"


def on_create(pod: Obj, ctx: KindContext) -> list[Cause]:
    _pod_defaults(pod)
    causes = _pod_validate(pod)
    pod["status"] = {"phase": "Pending", "qosClass": _qos(pod)}
    return causes


def on_update(old: Obj, new: Obj, ctx: KindContext) -> list[Cause]:
    _pod_defaults(new)
    # A pod stored before a default was added compares as if defaulted.
    old = {"spec": json.loads(json.dumps(old.get("spec") or {}))}
    _pod_defaults(old)
    return _pod_validate(new) or _pod_immutable(old, new)


def deletion_grace(pod: Obj, requested: int | None) -> int:
    """Seconds a deleted pod is given to stop: only a pod bound to a node and
    still running waits (for its kubelet); the rest go at once."""
    spec = pod.get("spec") or {}
    phase = (pod.get("status") or {}).get("phase")
    if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
        return 0
    return (
        requested if requested is not None else int(spec.get("terminationGracePeriodSeconds", 30))
    )
