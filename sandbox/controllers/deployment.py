"""The Deployment controller: a ReplicaSet per pod template, rolled over.

`kubectl create deployment`, `kubectl scale` and `kubectl rollout status`
must behave as on a cluster, so this follows the documented controller: the
current template's ReplicaSet is `<deployment>-<pod-template-hash>` (the
hash label is added to its selector and template, so the revisions' pods
never overlap), its revision annotation is one more than any older one's,
and a template change is rolled out either all at once (Recreate: old pods
gone first) or gradually (RollingUpdate: at most replicas+maxSurge pods in
all, at least replicas-maxUnavailable available, both 25% by default,
surge rounded up and unavailability down). The status holds what kubectl's
rollout status viewer reads: observedGeneration, replicas, updatedReplicas,
readyReplicas, availableReplicas, unavailableReplicas and the Available and
Progressing conditions (NewReplicaSetAvailable once complete,
ProgressDeadlineExceeded after progressDeadlineSeconds without progress).

Scaling a Deployment (its replicas changed while ReplicaSets still carry
the old count in their desired-replicas annotation) is handled first and
alone, as upstream: one active ReplicaSet simply takes the new count;
during a RollingUpdate several active ones share the change in proportion
to their size (larger ones first, the rounding leftover to the first).

Left out: rollback through the long removed spec.rollbackTo (kubectl
rollout undo writes the old template, handled as any template change).
"""

from __future__ import annotations

import copy
import json
import math
from datetime import datetime
from typing import Any

import structlog

from sandbox.controllers import events
from sandbox.controllers.base import Informer, Key, KeyedController, Obj, Requeue, write_status
from sandbox.controllers.ownership import claim
from sandbox.controllers.podutil import (
    controller_ref,
    is_terminal,
    now,
    owner_ref,
    parse_ts,
    selector_matches,
    ts,
)
from services.common.kube import KubeClient, KubeError

log = structlog.get_logger(__name__)

KIND = "Deployment"
API_VERSION = "apps/v1"
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
DESIRED = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
COMPONENT = "deployment-controller"
_SAFE = "bcdfghjklmnpqrstvwxz2456789"  # no vowels: no words in generated names


def deploy_path(ns: str, name: str = "", sub: str = "") -> str:
    base = f"/apis/apps/v1/namespaces/{ns}/deployments"
    return base + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")


def rs_path(rs: Obj) -> str:
    md = rs["metadata"]
    return f"/apis/apps/v1/namespaces/{md['namespace']}/replicasets/{md['name']}"


# -- pure logic ----------------------------------------------------------------


def template_hash(template: Obj, collision_count: int = 0) -> str:
    """A short stable name suffix for a pod template (FNV-1a 32 of its
    canonical JSON and the collision count, in vowel-free characters)."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += collision_count.to_bytes(4, "little")
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE[ord(c) % len(_SAFE)] for c in str(h))


def _without_hash(template: Obj) -> Obj:
    t = copy.deepcopy(template or {})
    labels = (t.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
        if not labels:
            t["metadata"].pop("labels")
    if "metadata" in t and not t["metadata"]:
        t.pop("metadata")
    return t


def same_template(a: Obj, b: Obj) -> bool:
    """Equal pod templates, ignoring the hash label the controller adds."""
    return _without_hash(a) == _without_hash(b)


def scaled_value(value: Any, total: int, round_up: bool) -> int:
    """An IntOrString (3 or "25%") against `total`."""
    if isinstance(value, int):
        return value
    s = str(value)
    if s.endswith("%"):
        frac = int(s[:-1]) * total / 100
        return math.ceil(frac) if round_up else math.floor(frac)
    return int(s)


def fenceposts(d: Obj) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) of a RollingUpdate Deployment, resolved."""
    spec = d.get("spec") or {}
    replicas = int(spec.get("replicas", 1))
    ru = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    surge = scaled_value(ru.get("maxSurge", "25%"), replicas, True)
    unavailable = scaled_value(ru.get("maxUnavailable", "25%"), replicas, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1  # otherwise no rollout could ever make progress
    return surge, unavailable


def _replicas(rs: Obj | None) -> int:
    return int((rs or {}).get("spec", {}).get("replicas", 0) or 0)


def _available(rs: Obj | None) -> int:
    return int(((rs or {}).get("status") or {}).get("availableReplicas", 0) or 0)


def new_rs_replicas(d: Obj, all_rss: list[Obj], new_rs: Obj | None) -> int:
    """How big the new ReplicaSet may be now (RollingUpdate: within maxSurge)."""
    spec = d.get("spec") or {}
    replicas = int(spec.get("replicas", 1))
    if (spec.get("strategy") or {}).get("type", "RollingUpdate") == "Recreate":
        return replicas
    surge, _ = fenceposts(d)
    current = sum(_replicas(rs) for rs in all_rss)
    if current >= replicas + surge:
        return _replicas(new_rs)
    grow = min(replicas + surge - current, max(0, replicas - _replicas(new_rs)))
    return _replicas(new_rs) + grow


def old_scale_downs(
    d: Obj, all_rss: list[Obj], new_rs: Obj | None, olds: list[Obj]
) -> dict[str, int]:
    """New sizes of old ReplicaSets (by name) for one RollingUpdate step:
    first their unavailable pods go, then available ones while at least
    replicas - maxUnavailable stay available."""
    replicas = int((d.get("spec") or {}).get("replicas", 1))
    if sum(_replicas(rs) for rs in olds) == 0:
        return {}
    _, max_unavailable = fenceposts(d)
    min_available = replicas - max_unavailable
    all_pods = sum(_replicas(rs) for rs in all_rss)
    new_unavailable = _replicas(new_rs) - _available(new_rs)
    max_down = all_pods - min_available - new_unavailable
    if max_down <= 0:
        return {}
    sizes = {rs["metadata"]["name"]: _replicas(rs) for rs in olds}
    ordered = sorted(olds, key=_age_key)
    # 1. unhealthy old pods cost no availability: remove them first
    cleaned = 0
    for rs in ordered:
        name = rs["metadata"]["name"]
        if cleaned >= max_down:
            break
        unhealthy = sizes[name] - _available(rs)
        if sizes[name] == 0 or unhealthy <= 0:
            continue
        down = min(max_down - cleaned, unhealthy)
        sizes[name] -= down
        cleaned += down
    # 2. then available ones, keeping min_available
    total_available = sum(_available(rs) for rs in all_rss)
    budget = total_available - min_available
    for rs in ordered:
        name = rs["metadata"]["name"]
        if budget <= 0:
            break
        down = min(sizes[name], budget, _available(rs))
        sizes[name] -= down
        budget -= down
    return {
        n: s
        for n, s in sizes.items()
        if s != _replicas(next(r for r in olds if r["metadata"]["name"] == n))
    }


def _desired_annotation(rs: Obj) -> int | None:
    try:
        return int((rs["metadata"].get("annotations") or {})[DESIRED])
    except (KeyError, ValueError):
        return None


def is_scaling_event(d: Obj, rss: list[Obj]) -> bool:
    """An active ReplicaSet was sized for another replica count."""
    replicas = int((d.get("spec") or {}).get("replicas", 1))
    for rs in rss:
        want = _desired_annotation(rs)
        if _replicas(rs) > 0 and want is not None and want != replicas:
            return True
    return False


def _round(x: float) -> int:
    # Half away from zero, as Go's math.Round (Python's round() halves to even).
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def _fraction(rs: Obj, d: Obj, surge: int) -> int:
    """How many replicas rs gains (or loses) in proportion to the new size."""
    replicas = int((d.get("spec") or {}).get("replicas", 1))
    if replicas == 0:
        return -_replicas(rs)
    try:
        annotated = int((rs["metadata"].get("annotations") or {})[MAX_REPLICAS])
    except (KeyError, ValueError):
        annotated = int((d.get("status") or {}).get("replicas", 0) or 0)
    if annotated <= 0:
        return 0
    return _round(_replicas(rs) * (replicas + surge) / annotated) - _replicas(rs)


def proportional_sizes(d: Obj, new_rs: Obj | None, olds: list[Obj]) -> dict[str, int]:
    """New sizes (by name) for a scaling event, as the upstream scale step."""
    spec = d.get("spec") or {}
    replicas = int(spec.get("replicas", 1))
    all_rss = [rs for rs in [new_rs, *olds] if rs is not None]
    active = [rs for rs in all_rss if _replicas(rs) > 0]
    if len(active) == 1:
        return {active[0]["metadata"]["name"]: replicas}
    if not active:
        latest = new_rs or max(olds, key=_age_key, default=None)
        return {latest["metadata"]["name"]: replicas} if latest is not None else {}
    if (
        new_rs is not None
        and _replicas(new_rs) == replicas
        and _desired_annotation(new_rs) == replicas
        and _available(new_rs) == replicas
    ):
        return {rs["metadata"]["name"]: 0 for rs in olds if _replicas(rs) > 0}
    if (spec.get("strategy") or {}).get("type", "RollingUpdate") == "Recreate":
        return {}
    surge = fenceposts(d)[0]
    allowed = replicas + surge if replicas > 0 else 0
    to_add = allowed - sum(_replicas(rs) for rs in active)

    def order(rs: Obj) -> tuple[int, float]:
        age = _age_key(rs)[0]
        return (-_replicas(rs), -age if to_add > 0 else age)  # newer first when growing

    ranked = sorted(active, key=order)
    sizes = {rs["metadata"]["name"]: _replicas(rs) for rs in ranked}
    added = 0
    for rs in ranked:
        if to_add == 0 or added == to_add:
            break
        frac = _fraction(rs, d, surge)
        allowed_left = to_add - added
        share = min(frac, allowed_left) if to_add > 0 else max(frac, allowed_left)
        sizes[rs["metadata"]["name"]] += share
        added += share
    if to_add != added:
        first = ranked[0]["metadata"]["name"]
        sizes[first] = max(0, sizes[first] + to_add - added)
    return sizes


def _age_key(rs: Obj) -> tuple[float, str]:
    created = parse_ts(rs["metadata"].get("creationTimestamp"))
    return (created.timestamp() if created else 0.0, rs["metadata"]["name"])


def revision(rs: Obj) -> int:
    try:
        return int((rs["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def set_condition(conds: list[Obj], cond: Obj, keep_transition: bool = True) -> list[Obj]:
    """Replace the condition of cond's type; an unchanged status keeps its
    lastTransitionTime, an unchanged status and reason keeps everything."""
    out = [c for c in conds if c.get("type") != cond["type"]]
    old = next((c for c in conds if c.get("type") == cond["type"]), None)
    if old is not None and old.get("status") == cond["status"]:
        if old.get("reason") == cond.get("reason") and not keep_transition:
            return conds
        cond["lastTransitionTime"] = old.get("lastTransitionTime", cond["lastTransitionTime"])
    return [*out, cond]


def status_for(
    d: Obj, new_rs: Obj | None, olds: list[Obj], created: bool, at: datetime
) -> tuple[Obj, float | None]:
    """The Deployment's status and, while a rollout is incomplete, the
    seconds left before its progress deadline."""
    spec = d.get("spec") or {}
    replicas = int(spec.get("replicas", 1))
    all_rss = [rs for rs in [new_rs, *olds] if rs is not None]

    def total(field: str) -> int:
        return sum(int((rs.get("status") or {}).get(field, 0) or 0) for rs in all_rss)

    old_status = d.get("status") or {}
    st: Obj = {
        "observedGeneration": d["metadata"].get("generation", 1),
        "replicas": total("replicas"),
        "updatedReplicas": int(((new_rs or {}).get("status") or {}).get("replicas", 0) or 0),
        "readyReplicas": total("readyReplicas"),
        "availableReplicas": total("availableReplicas"),
    }
    st["unavailableReplicas"] = max(0, replicas - st["availableReplicas"])
    if old_status.get("collisionCount"):
        st["collisionCount"] = old_status["collisionCount"]
    stamp = ts(at)
    conds: list[Obj] = list(old_status.get("conditions") or [])
    rolling = (spec.get("strategy") or {}).get("type", "RollingUpdate") != "Recreate"
    max_unavailable = fenceposts(d)[1] if rolling else 0
    if st["availableReplicas"] >= replicas - max_unavailable:
        avail = ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
    else:
        avail = (
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    conds = set_condition(conds, _cond("Available", *avail, stamp), keep_transition=False)
    name = (new_rs or {}).get("metadata", {}).get("name", "")
    complete = (
        st["updatedReplicas"] == replicas
        and st["replicas"] == replicas
        and st["availableReplicas"] == replicas
    )
    progressing = next((c for c in conds if c.get("type") == "Progressing"), None)
    deadline = spec.get("progressDeadlineSeconds", 600)
    wake: float | None = None
    if spec.get("paused"):
        conds = set_condition(
            conds,
            _cond("Progressing", "Unknown", "DeploymentPaused", "Deployment is paused", stamp),
            keep_transition=False,
        )
    elif complete:
        if (progressing or {}).get("reason") != "NewReplicaSetAvailable":
            msg = f'ReplicaSet "{name}" has successfully progressed.'
            conds = set_condition(
                conds, _cond("Progressing", "True", "NewReplicaSetAvailable", msg, stamp)
            )
    elif created:
        msg = f'Created new replica set "{name}"'
        conds = set_condition(
            conds, _cond("Progressing", "True", "NewReplicaSetCreated", msg, stamp)
        )
    elif new_rs is not None and (
        progressing is None
        or st["updatedReplicas"] > int(old_status.get("updatedReplicas", 0) or 0)
        or st["replicas"] < int(old_status.get("replicas", 0) or 0)
        or st["readyReplicas"] > int(old_status.get("readyReplicas", 0) or 0)
        or st["availableReplicas"] > int(old_status.get("availableReplicas", 0) or 0)
        or (progressing.get("reason") == "NewReplicaSetAvailable")
    ):
        msg = f'ReplicaSet "{name}" is progressing.'
        conds = set_condition(conds, _cond("Progressing", "True", "ReplicaSetUpdated", msg, stamp))
    elif progressing is not None and deadline is not None and progressing.get("status") == "True":
        last = parse_ts(progressing.get("lastUpdateTime")) or at
        left = float(deadline) - (at - last).total_seconds()
        if left <= 0:
            msg = f'ReplicaSet "{name}" has timed out progressing.'
            conds = set_condition(
                conds, _cond("Progressing", "False", "ProgressDeadlineExceeded", msg, stamp)
            )
        else:
            wake = left
    if not complete and not spec.get("paused") and wake is None and deadline is not None:
        wake = float(deadline)
    st["conditions"] = sorted(conds, key=lambda c: str(c.get("type")))
    return st, wake


def _cond(kind: str, status: str, reason: str, message: str, stamp: str) -> Obj:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastUpdateTime": stamp,
        "lastTransitionTime": stamp,
    }


def _comparable(st: Obj) -> Obj:
    """Status without timestamps that alone do not make a write worth it."""
    out = copy.deepcopy(st)
    for c in out.get("conditions") or []:
        c.pop("lastUpdateTime", None)
    return out


# -- the controller ------------------------------------------------------------


class DeploymentController(KeyedController):
    def __init__(self, kube: KubeClient, deploys: Informer, rss: Informer, pods: Informer) -> None:
        super().__init__("deployment", kube, deploys)
        self.deploys = deploys
        self.rss = rss
        self.pods = pods
        rss.handlers.append(self._on_rs)
        pods.handlers.append(self._on_pod)

    def _on_rs(self, kind: str, rs: Obj, old: Obj | None) -> None:
        ns = rs["metadata"]["namespace"]
        ref = controller_ref(rs)
        if ref is not None:
            if ref.get("kind") == KIND:
                self.workers.add((ns, ref["name"]))
            return
        if kind == "DELETED":
            return
        for d in self.deploys.objects(ns):
            sel = (d.get("spec") or {}).get("selector")
            if selector_matches(sel, rs["metadata"].get("labels")):
                self.workers.add((ns, d["metadata"]["name"]))

    def _on_pod(self, kind: str, pod: Obj, old: Obj | None) -> None:
        # Recreate waits for the old revision's pods to be gone.
        if kind != "DELETED" and not is_terminal(pod):
            return
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        rs = self.rss.get(pod["metadata"]["namespace"], ref["name"])
        dref = controller_ref(rs) if rs is not None else None
        if dref is not None and dref.get("kind") == KIND:
            self.workers.add((pod["metadata"]["namespace"], dref["name"]))

    async def reconcile(self, key: Key) -> None:
        ns, name = key
        d = self.deploys.get(ns, name)
        if d is None or d["metadata"].get("deletionTimestamp"):
            return  # its ReplicaSets go with it (garbage collection)
        spec = d.get("spec") or {}
        selector = spec.get("selector")
        if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
            return
        rss = await claim(
            self.kube,
            self.rss,
            rs_path,
            d,
            KIND,
            API_VERSION,
            self.rss.objects(ns),
            lambda rs: selector_matches(selector, rs["metadata"].get("labels")),
        )
        template = spec.get("template") or {}
        same = sorted(
            (rs for rs in rss if same_template(rs["spec"].get("template") or {}, template)),
            key=_age_key,
        )
        new_rs = same[0] if same else None
        olds = [rs for rs in rss if rs is not new_rs]
        created = False
        if is_scaling_event(d, rss):
            # Only the scale step in this pass, paused or not; the rollout resumes after.
            sizes = proportional_sizes(d, new_rs, olds)

            async def sized(rs: Obj) -> Obj:
                name = rs["metadata"]["name"]
                return await self._scale(d, rs, sizes[name]) if name in sizes else rs

            new_rs = await sized(new_rs) if new_rs is not None else None
            olds = [await sized(rs) for rs in olds]
            await self._write_status(d, new_rs, olds, False)
            return
        if not spec.get("paused"):
            recreate = (spec.get("strategy") or {}).get("type") == "Recreate"
            if recreate:
                olds = [await self._scale(d, rs, 0) for rs in olds]
                if self._old_pods_running(olds):
                    await self._write_status(d, new_rs, olds, False)
                    return  # a pod event wakes us when they are gone
            if new_rs is None:
                new_rs = await self._create_rs(d, olds)
                created = True
            else:
                new_rs = await self._sync_revision(d, new_rs, olds)
            replicas = int(spec.get("replicas", 1))
            if _replicas(new_rs) > replicas:
                new_rs = await self._scale(d, new_rs, replicas)
            elif _replicas(new_rs) < replicas:
                new_rs = await self._scale(d, new_rs, new_rs_replicas(d, [new_rs, *olds], new_rs))
            if not recreate:
                sizes = old_scale_downs(d, [new_rs, *olds], new_rs, olds)
                olds = [
                    await self._scale(d, rs, sizes[rs["metadata"]["name"]])
                    if rs["metadata"]["name"] in sizes
                    else rs
                    for rs in olds
                ]
            await self._cleanup(d, olds)
            await self._annotate(d, new_rs)
        wake = await self._write_status(d, new_rs, olds, created)
        if wake is not None:
            raise Requeue("progress deadline", wake + 0.5)

    def _old_pods_running(self, olds: list[Obj]) -> bool:
        uids = {rs["metadata"]["uid"] for rs in olds}
        for pod in self.pods.objects(olds[0]["metadata"]["namespace"] if olds else None):
            ref = controller_ref(pod)
            if ref is not None and ref.get("uid") in uids and not is_terminal(pod):
                return True
        return False

    async def _create_rs(self, d: Obj, olds: list[Obj]) -> Obj:
        md, spec = d["metadata"], d.get("spec") or {}
        collisions = int((d.get("status") or {}).get("collisionCount", 0) or 0)
        h = template_hash(spec.get("template") or {}, collisions)
        template = copy.deepcopy(spec.get("template") or {})
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = h
        selector = copy.deepcopy(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = h
        surge = fenceposts(d)[0] if (spec.get("strategy") or {}).get("type") != "Recreate" else 0
        replicas = int(spec.get("replicas", 1))
        rs: Obj = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{md['name']}-{h}",
                "namespace": md["namespace"],
                "labels": template["metadata"]["labels"],
                "annotations": {
                    REVISION: str(max((revision(r) for r in olds), default=0) + 1),
                    DESIRED: str(replicas),
                    MAX_REPLICAS: str(replicas + surge),
                },
                "ownerReferences": [owner_ref(d, KIND, API_VERSION)],
            },
            "spec": {
                "replicas": 0,
                "minReadySeconds": int(spec.get("minReadySeconds", 0) or 0),
                "selector": selector,
                "template": template,
            },
        }
        rs["spec"]["replicas"] = new_rs_replicas(d, olds, None)
        try:
            out = await self.kube.create(
                f"/apis/apps/v1/namespaces/{md['namespace']}/replicasets", rs
            )
        except KubeError as e:
            if e.status != 409:
                raise
            existing = await self.kube.get(rs_path(rs))
            ref = controller_ref(existing)
            if (ref or {}).get("uid") == md["uid"] and same_template(
                existing["spec"].get("template") or {}, spec.get("template") or {}
            ):
                self.rss.wrote(existing)
                return existing
            # A hash collision: another template has this name. Count it and go again.
            await self.kube.merge_patch(
                deploy_path(md["namespace"], md["name"], "status"),
                {"status": {"collisionCount": collisions + 1}},
            )
            raise Requeue("pod-template-hash collision", 0.05) from None
        self.rss.wrote(out)
        await events.record(
            self.kube,
            d,
            "ScalingReplicaSet",
            f"Scaled up replica set {out['metadata']['name']} from 0 to {out['spec']['replicas']}",
            component=COMPONENT,
        )
        return out

    async def _sync_revision(self, d: Obj, rs: Obj, olds: list[Obj]) -> Obj:
        want = max((revision(r) for r in olds), default=0) + 1
        min_ready = int((d.get("spec") or {}).get("minReadySeconds", 0) or 0)
        patch: Obj = {}
        if revision(rs) < want:
            patch["metadata"] = {"annotations": {REVISION: str(want)}}
        if int(rs["spec"].get("minReadySeconds", 0) or 0) != min_ready:
            patch["spec"] = {"minReadySeconds": min_ready}
        if not patch:
            return rs
        out = await self.kube.merge_patch(rs_path(rs), patch)
        self.rss.wrote(out)
        return out

    async def _scale(self, d: Obj, rs: Obj, size: int) -> Obj:
        spec = d.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        surge = fenceposts(d)[0] if (spec.get("strategy") or {}).get("type") != "Recreate" else 0
        ann = rs["metadata"].get("annotations") or {}
        want_ann = {DESIRED: str(replicas), MAX_REPLICAS: str(replicas + surge)}
        if _replicas(rs) == size and all(ann.get(k) == v for k, v in want_ann.items()):
            return rs
        before = _replicas(rs)
        out = await self.kube.merge_patch(
            rs_path(rs),
            {"metadata": {"annotations": want_ann}, "spec": {"replicas": size}},
        )
        self.rss.wrote(out)
        if before != size:
            verb = "up" if size > before else "down"
            await events.record(
                self.kube,
                d,
                "ScalingReplicaSet",
                f"Scaled {verb} replica set {rs['metadata']['name']} from {before} to {size}",
                component=COMPONENT,
            )
        return out

    async def _cleanup(self, d: Obj, olds: list[Obj]) -> None:
        """Keep at most revisionHistoryLimit (10) scaled-down old ReplicaSets."""
        limit = int((d.get("spec") or {}).get("revisionHistoryLimit", 10))
        idle = [
            rs
            for rs in olds
            if _replicas(rs) == 0
            and int((rs.get("status") or {}).get("replicas", 0) or 0) == 0
            and not rs["metadata"].get("deletionTimestamp")
        ]
        idle.sort(key=lambda rs: (revision(rs), _age_key(rs)))
        for rs in idle[: max(0, len(idle) - limit)]:
            try:
                await self.kube.delete(rs_path(rs))
            except KubeError as e:
                if e.status != 404:
                    raise
            self.rss.removed(rs)

    async def _annotate(self, d: Obj, new_rs: Obj) -> None:
        rev = str(revision(new_rs))
        if (d["metadata"].get("annotations") or {}).get(REVISION) == rev:
            return
        md = d["metadata"]
        out = await self.kube.merge_patch(
            deploy_path(md["namespace"], md["name"]), {"metadata": {"annotations": {REVISION: rev}}}
        )
        self.deploys.wrote(out)
        d["metadata"] = out["metadata"]

    async def _write_status(
        self, d: Obj, new_rs: Obj | None, olds: list[Obj], created: bool
    ) -> float | None:
        status, wake = status_for(d, new_rs, olds, created, now())
        if _comparable(status) != _comparable(d.get("status") or {}):
            md = d["metadata"]
            path = deploy_path(md["namespace"], md["name"], "status")
            if not await write_status(self.kube, self.deploys, path, status):
                return None
        return wake
