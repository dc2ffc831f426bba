"""The workload kinds (apps/v1, batch/v1): the defaults the API server
fills in on every create and update, as k8s.io/api documents them.

Deployment: replicas 1, strategy RollingUpdate (maxSurge and
maxUnavailable 25%), revisionHistoryLimit 10, progressDeadlineSeconds
600. ReplicaSet: replicas 1. DaemonSet: updateStrategy RollingUpdate
(maxUnavailable 1, maxSurge 0), revisionHistoryLimit 10. StatefulSet:
replicas 1, podManagementPolicy OrderedReady, updateStrategy
RollingUpdate with partition 0, revisionHistoryLimit 10, PVC retention
Retain/Retain. Job: parallelism and completions 1 when neither is set
(parallelism 1 when only completions is), backoffLimit 6 (2147483647
with backoffLimitPerIndex), completionMode NonIndexed, suspend false,
podReplacementPolicy TerminatingOrFailed (Failed with a
podFailurePolicy), and on create, unless manualSelector is true, the
generated selector: the Job's uid under
`batch.kubernetes.io/controller-uid` in spec.selector.matchLabels, and
that label, the legacy `controller-uid` and the job-name labels (both
forms) on the template. CronJob: concurrencyPolicy Allow, suspend false,
history limits 3 and 1. Every pod template gets the PodSpec defaults of
`pods` (not the Pod's admission defaults: a template has no service
account or priority filled in).

Validation beyond what defaulting needs is left out (a Deployment's
selector is not checked against its template labels).
"""

from __future__ import annotations

from collections.abc import Callable

from .allocation import KindContext
from .errors import Cause
from .pods import template_defaults
from .resources import Obj

_MAX_INT32 = 2147483647


def _spec(obj: Obj) -> Obj:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        spec = obj["spec"] = {}
    return spec


def _sub(parent: Obj, key: str) -> Obj:
    """parent[key] as a dict, created (or replaced if null) when absent."""
    v = parent.get(key)
    if not isinstance(v, dict):
        v = parent[key] = {}
    return v


def _rolling_update_defaults(spec: Obj, field: str, rolling: Obj) -> None:
    """spec[field] (a Deployment's strategy, a DaemonSet's updateStrategy):
    type RollingUpdate when unset, and a RollingUpdate's rollingUpdate gets
    `rolling` (maxUnavailable, maxSurge) where unset, as both kinds default."""
    strategy = _sub(spec, field)
    if not strategy.get("type"):
        strategy["type"] = "RollingUpdate"
    if strategy["type"] == "RollingUpdate":
        ru = _sub(strategy, "rollingUpdate")
        for k, v in rolling.items():
            ru.setdefault(k, v)


def deployment_defaults(obj: Obj) -> None:
    spec = _spec(obj)
    spec.setdefault("replicas", 1)
    _rolling_update_defaults(spec, "strategy", {"maxUnavailable": "25%", "maxSurge": "25%"})
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    template_defaults(spec.get("template"))


def replicaset_defaults(obj: Obj) -> None:
    spec = _spec(obj)
    spec.setdefault("replicas", 1)
    template_defaults(spec.get("template"))


def daemonset_defaults(obj: Obj) -> None:
    spec = _spec(obj)
    _rolling_update_defaults(spec, "updateStrategy", {"maxUnavailable": 1, "maxSurge": 0})
    spec.setdefault("revisionHistoryLimit", 10)
    template_defaults(spec.get("template"))


def statefulset_defaults(obj: Obj) -> None:
    spec = _spec(obj)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    strategy = _sub(spec, "updateStrategy")
    if not strategy.get("type"):
        strategy["type"] = "RollingUpdate"
        _sub(strategy, "rollingUpdate")
    ru = strategy.get("rollingUpdate")
    if strategy["type"] == "RollingUpdate" and isinstance(ru, dict):
        ru.setdefault("partition", 0)
    retention = _sub(spec, "persistentVolumeClaimRetentionPolicy")
    retention.setdefault("whenDeleted", "Retain")
    retention.setdefault("whenScaled", "Retain")
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    template_defaults(spec.get("template"))


def _job_spec_defaults(spec: Obj) -> None:
    """What a Job's spec is defaulted with (not a CronJob's job template,
    which only has its pod template defaulted)."""
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    if spec.get("parallelism") is None:
        spec["parallelism"] = 1
    if spec.get("backoffLimit") is None:
        per_index = spec.get("backoffLimitPerIndex") is not None
        spec["backoffLimit"] = _MAX_INT32 if per_index else 6
    if spec.get("completionMode") is None:
        spec["completionMode"] = "NonIndexed"
    if spec.get("suspend") is None:
        spec["suspend"] = False
    if spec.get("podReplacementPolicy") is None:
        failure_policy = spec.get("podFailurePolicy") is not None
        spec["podReplacementPolicy"] = "Failed" if failure_policy else "TerminatingOrFailed"
    template_defaults(spec.get("template"))


# The status a create starts from, where it is not `{}`.
REPLICASET_STATUS: Obj = {"replicas": 0}
DAEMONSET_STATUS: Obj = {
    "currentNumberScheduled": 0,
    "numberMisscheduled": 0,
    "desiredNumberScheduled": 0,
    "numberReady": 0,
}
STATEFULSET_STATUS: Obj = {"replicas": 0, "availableReplicas": 0}

JOB_NAME_LABELS = ("job-name", "batch.kubernetes.io/job-name")
CONTROLLER_UID_LABELS = ("controller-uid", "batch.kubernetes.io/controller-uid")


def _job_selector(job: Obj) -> None:
    """The selector the API server generates for a Job on create, unless
    the Job asks to select its pods itself (manualSelector: true). Labels
    a template already has are left as given (validation would catch a
    mismatch)."""
    spec = _spec(job)
    if spec.get("manualSelector") is True:
        return
    meta = job["metadata"]
    template = _sub(spec, "template")
    tmeta = _sub(template, "metadata")
    labels = _sub(tmeta, "labels")
    for key in JOB_NAME_LABELS:
        labels.setdefault(key, meta.get("name", ""))
    for key in CONTROLLER_UID_LABELS:
        labels.setdefault(key, meta.get("uid", ""))
    selector = _sub(spec, "selector")
    match = _sub(selector, "matchLabels")
    match.setdefault(CONTROLLER_UID_LABELS[1], meta.get("uid", ""))


def cronjob_defaults(obj: Obj) -> None:
    spec = _spec(obj)
    spec.setdefault("concurrencyPolicy", "Allow")
    if spec.get("suspend") is None:
        spec["suspend"] = False
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)
    jt = spec.get("jobTemplate")
    if isinstance(jt, dict) and isinstance(jt.get("spec"), dict):
        template_defaults(jt["spec"].get("template"))


def _job_template_policy(job: Obj) -> list[Cause]:
    rp = ((_spec(job).get("template") or {}).get("spec") or {}).get("restartPolicy")
    if rp in ("OnFailure", "Never"):
        return []
    shown = f'"{rp}"' if isinstance(rp, str) else str(rp)
    return [
        (
            "spec.template.spec.restartPolicy",
            "FieldValueNotSupported",
            f'Unsupported value: {shown}: supported values: "OnFailure", "Never"',
        )
    ]


def job_create(job: Obj, ctx: KindContext) -> list[Cause]:
    job["status"] = {}
    _job_selector(job)
    _job_spec_defaults(_spec(job))
    return _job_template_policy(job)


def job_update(old: Obj, new: Obj, ctx: KindContext) -> list[Cause]:
    _job_spec_defaults(_spec(new))
    return _job_template_policy(new)


CreateHook = Callable[[Obj, KindContext], list[Cause]]
UpdateHook = Callable[[Obj, Obj, KindContext], list[Cause]]


def hooks(
    defaults: Callable[[Obj], None], empty_status: Obj | None = None
) -> tuple[CreateHook, UpdateHook]:
    """(on_create, on_update) of a kind whose only hooks are its defaults,
    and the status a create starts with (the Go status struct's zero value
    as JSON: the fields without omitempty)."""

    def on_create(obj: Obj, ctx: KindContext) -> list[Cause]:
        obj["status"] = dict(empty_status or {})
        defaults(obj)
        return []

    def on_update(old: Obj, new: Obj, ctx: KindContext) -> list[Cause]:
        defaults(new)
        return []

    return on_create, on_update
