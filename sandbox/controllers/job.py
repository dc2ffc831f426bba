"""The Job controller (and the TTL-after-finished one): pods run to completion.

`kubectl create job` and manifests with Jobs (migrations, smoke tests)
expect pods to be started until enough of them succeed, as the batch/v1
docs describe: at most `parallelism` (default 1) active pods, until
`completions` (default 1) pods succeeded, or, with completions unset, until
one succeeded and the rest finished; failed pods are replaced after an
exponential back-off (10 s doubling, capped at 6 min) until more than
`backoffLimit` (default 6) failed; `activeDeadlineSeconds` and `suspend`
are honoured. Status: active, ready, succeeded, failed, startTime,
completionTime and the conditions kubectl waits on (SuccessCriteriaMet then
Complete; FailureTarget then Failed; Suspended). A finished Job with
`ttlSecondsAfterFinished` is deleted that long after it finished.

The real API server gives a Job a selector on `batch.kubernetes.io/
controller-uid` and those labels on its template; where that did not
happen, pods are recognised by their controller reference alone. Counts of
succeeded and failed pods never go down, so a finished pod deleted by
someone does not undo progress (the real controller tracks pods with a
finalizer for that). Left out: Indexed completion mode, pod failure and
success policies.
"""

from __future__ import annotations

import asyncio
import copy
from datetime import datetime

import structlog

from sandbox.controllers import events
from sandbox.controllers.base import Informer, Key, KeyedController, Obj, Requeue, write_status
from sandbox.controllers.podcontrol import PodControl
from sandbox.controllers.podutil import (
    controller_ref,
    is_ready,
    now,
    owner_ref,
    parse_ts,
    selector_matches,
    ts,
)
from services.common.kube import KubeClient, KubeError

log = structlog.get_logger(__name__)

KIND = "Job"
API_VERSION = "batch/v1"
COMPONENT = "job-controller"
BACKOFF_BASE = 10.0
BACKOFF_MAX = 360.0


def job_path(ns: str, name: str, sub: str = "") -> str:
    return f"/apis/batch/v1/namespaces/{ns}/jobs/{name}" + (f"/{sub}" if sub else "")


def _phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def finished(job: Obj) -> str | None:
    """ "Complete" or "Failed" once the Job has finished, else None."""
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return str(c["type"])
    return None


def want_active(job: Obj, succeeded: int, active: int) -> int:
    """How many pods should be running now (NonIndexed completion mode)."""
    spec = job.get("spec") or {}
    parallelism = int(spec.get("parallelism", 1) if spec.get("parallelism") is not None else 1)
    completions = spec.get("completions", 1) if "completions" in spec else 1
    if completions is None:
        # Work-queue style: once one pod succeeded, no new ones start.
        return 0 if succeeded > 0 else parallelism
    return max(0, min(parallelism, int(completions) - succeeded))


def done_succeeding(job: Obj, succeeded: int, active: int) -> bool:
    spec = job.get("spec") or {}
    completions = spec.get("completions", 1) if "completions" in spec else 1
    if completions is None:
        return succeeded > 0 and active == 0
    return succeeded >= int(completions)


def backoff_delay(failed: int) -> float:
    return 0.0 if failed <= 0 else min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (failed - 1))


def pod_for(job: Obj) -> Obj:
    template = copy.deepcopy((job.get("spec") or {}).get("template") or {})
    tmeta = template.get("metadata") or {}
    md = job["metadata"]
    labels = dict(tmeta.get("labels") or {})
    labels.setdefault("batch.kubernetes.io/controller-uid", md["uid"])
    labels.setdefault("batch.kubernetes.io/job-name", md["name"])
    labels.setdefault("controller-uid", md["uid"])
    labels.setdefault("job-name", md["name"])
    pmd: Obj = {
        "generateName": f"{md['name']}-",
        "namespace": md["namespace"],
        "labels": labels,
        "ownerReferences": [owner_ref(job, KIND, API_VERSION)],
    }
    if tmeta.get("annotations"):
        pmd["annotations"] = tmeta["annotations"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pmd, "spec": template.get("spec") or {}}


def _cond(kind: str, reason: str, message: str, stamp: str, status: str = "True") -> Obj:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastProbeTime": stamp,
        "lastTransitionTime": stamp,
    }


def _last_failure(pods: list[Obj]) -> datetime | None:
    stamps = []
    for p in pods:
        if _phase(p) != "Failed":
            continue
        for cs in (p.get("status") or {}).get("containerStatuses") or []:
            t = parse_ts(((cs.get("state") or {}).get("terminated") or {}).get("finishedAt"))
            if t is not None:
                stamps.append(t)
    return max(stamps, default=None)


class JobController(KeyedController):
    def __init__(self, kube: KubeClient, jobs: Informer, pods: Informer) -> None:
        super().__init__("job", kube, jobs)
        self.jobs = jobs
        self.pods = pods
        self.podctl = PodControl(kube, pods, COMPONENT)
        pods.handlers.append(self.owner_handler(KIND))

    async def reconcile(self, key: Key) -> None:
        ns, name = key
        job = self.jobs.get(ns, name)
        if job is None or job["metadata"].get("deletionTimestamp"):
            return
        spec = job.get("spec") or {}
        uid = job["metadata"]["uid"]
        selector = spec.get("selector")
        pods = [
            p
            for p in self.pods.objects(ns)
            if (controller_ref(p) or {}).get("uid") == uid
            and (selector is None or selector_matches(selector, p["metadata"].get("labels")))
        ]
        at = now()
        state = finished(job)
        if state is not None:
            await self._expire(job, at)
            return
        status = copy.deepcopy(job.get("status") or {})
        active = [
            p
            for p in pods
            if _phase(p) not in ("Succeeded", "Failed")
            and not p["metadata"].get("deletionTimestamp")
        ]
        succeeded = max(
            int(status.get("succeeded", 0) or 0), sum(1 for p in pods if _phase(p) == "Succeeded")
        )
        failed = max(
            int(status.get("failed", 0) or 0), sum(1 for p in pods if _phase(p) == "Failed")
        )
        stamp = ts(at)
        conds: list[Obj] = [
            c for c in status.get("conditions") or [] if c.get("type") != "Suspended"
        ]
        wake: float | None = None
        outcome: tuple[str, str, str] | None = None  # (condition, reason, message)
        if spec.get("suspend"):
            await self.podctl.delete(job, active, event=False)
            active = []
            conds.append(_cond("Suspended", "JobSuspended", "Job suspended", stamp))
        else:
            status.setdefault("startTime", stamp)
            started = parse_ts(status["startTime"]) or at
            deadline = spec.get("activeDeadlineSeconds")
            backoff_limit = int(
                spec.get("backoffLimit", 6) if spec.get("backoffLimit") is not None else 6
            )
            if failed > backoff_limit:
                outcome = (
                    "Failed",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                )
            elif deadline is not None and (at - started).total_seconds() >= int(deadline):
                outcome = (
                    "Failed",
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                )
            elif done_succeeding(job, succeeded, len(active)):
                outcome = (
                    "Complete",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                )
            if outcome is not None:
                # Finished either way: whatever still runs is not needed.
                await self.podctl.delete(job, active, event=False)
                active = []
            else:
                if deadline is not None:
                    wake = int(deadline) - (at - started).total_seconds()
                missing = want_active(job, succeeded, len(active)) - len(active)
                if missing > 0:
                    last = _last_failure(pods)
                    left = backoff_delay(failed) - ((at - last).total_seconds() if last else 1e9)
                    if left > 0:
                        wake = left if wake is None else min(wake, left)
                    else:
                        active += await self._create(job, missing)
                elif missing < 0:
                    await self.podctl.delete(job, active[missing:], event=False)
                    active = active[:missing]
        status.update(
            {
                "active": len(active),
                "ready": sum(1 for p in active if is_ready(p)),
                "succeeded": succeeded,
                "failed": failed,
                "terminating": sum(
                    1
                    for p in pods
                    if p["metadata"].get("deletionTimestamp")
                    and _phase(p) not in ("Succeeded", "Failed")
                ),
            }
        )
        if outcome is not None and not active:
            target = "SuccessCriteriaMet" if outcome[0] == "Complete" else "FailureTarget"
            conds = [c for c in conds if c.get("type") not in (target, outcome[0])]
            conds.append(_cond(target, *outcome[1:], stamp))
            conds.append(_cond(outcome[0], *outcome[1:], stamp))
            if outcome[0] == "Complete":
                status["completionTime"] = stamp
            await events.record(
                self.kube,
                job,
                outcome[0] if outcome[0] == "Failed" else "Completed",
                outcome[2],
                component=COMPONENT,
                warning=outcome[0] == "Failed",
            )
        status["conditions"] = conds or None
        if status != (job.get("status") or {}) and not await write_status(
            self.kube, self.jobs, job_path(ns, name, "status"), status
        ):
            return
        if wake is not None:
            raise Requeue("job deadline or back-off", max(0.05, wake + 0.05))

    async def _create(self, job: Obj, count: int) -> list[Obj]:
        results = await asyncio.gather(
            *(self.podctl.create(job, pod_for(job)) for _ in range(count)),
            return_exceptions=True,
        )
        out: list[Obj] = []
        failure: BaseException | None = None
        for r in results:
            if isinstance(r, BaseException):
                failure = r
            else:
                out.append(r)
        if failure is not None:
            raise failure
        return out

    async def _expire(self, job: Obj, at: datetime) -> None:
        """The TTL-after-finished controller: delete the Job (and, by
        ownerReferences, its pods) ttlSecondsAfterFinished after it finished."""
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        if ttl is None:
            return
        st = job.get("status") or {}
        end = parse_ts(st.get("completionTime"))
        if end is None:
            ends = [
                parse_ts(c.get("lastTransitionTime"))
                for c in st.get("conditions") or []
                if c.get("type") in ("Complete", "Failed")
            ]
            end = max((t for t in ends if t is not None), default=None)
        left = int(ttl) - (at - (end or at)).total_seconds()
        if left > 0:
            raise Requeue("ttl after finished", left + 0.05)
        md = job["metadata"]
        try:
            await self.kube.delete(
                job_path(md["namespace"], md["name"]),
                {"propagationPolicy": "Background", "preconditions": {"uid": md["uid"]}},
            )
        except KubeError as e:
            if e.status not in (404, 409):
                raise
