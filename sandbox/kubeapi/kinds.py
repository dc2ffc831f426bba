"""What the real API server does specially per kind, as one table.

Each built-in kind that differs from the default gets a `KindSpec` in
`KINDS`: its name rule, the top-level fields its Go type has, whether its
status is reset on create, its create and update hooks (defaulting,
validation, allocation), whether PUT may create it, what DELETE answers
and how long a deletion waits. The verbs read the spec instead of testing
kinds one by one, so serving a new kind's behaviour is adding an entry.

Only the behaviour kovn and kubectl can observe is reproduced; anything
else passes through untouched. The hooks themselves live with their kind
(`pods`, `services`, `crds`, `networking`, `workloads`) or below, when
they are small.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass

from . import crds, networking, pods, services, workloads
from .allocation import KindContext
from .errors import Cause
from .resources import CRD_GR, EVENT_GR, GR, NS_GR, POD_GR, SERVICE_GR, Obj, ResourceType
from .validation import META_FIELDS, NameRule, dns1123_label, dns1123_subdomain, path_segment

CreateHook = Callable[[Obj, KindContext], list[Cause]]
UpdateHook = Callable[[Obj, Obj, KindContext], list[Cause]]  # (old, new, context)
GraceRule = Callable[[Obj, int | None], int]  # (object, requested seconds) -> seconds


def _no_grace(obj: Obj, requested: int | None) -> int:
    return 0


_COMMON_TOP = frozenset({"apiVersion", "kind", "metadata"})
_SPEC_STATUS = frozenset({"spec", "status"})


@dataclass(frozen=True)
class KindSpec:
    """How one kind departs from the default behaviour of the verbs."""

    # Top-level fields of the kind's Go type (beside apiVersion, kind and
    # metadata); others are dropped with a warning, or refused if strict.
    fields: frozenset[str] = _SPEC_STATUS
    name_rule: NameRule = dns1123_subdomain
    # The status subresource owns status: a create cannot set it.
    reset_status_on_create: bool = False
    on_create: CreateHook | None = None
    on_update: UpdateHook | None = None
    # PUT of an absent object creates it (AllowCreateOnUpdate).
    create_on_update: bool = False
    # DELETE answers with the object rather than a Status.
    delete_returns_object: bool = False
    deletion_grace: GraceRule = _no_grace


def _validate_both(check: Callable[[Obj], list[Cause]]) -> tuple[CreateHook, UpdateHook]:
    """Hooks for a kind that is validated alike on create and update."""
    return (lambda obj, ctx: check(obj)), (lambda old, new, ctx: check(new))


def _namespace_defaults(ns: Obj) -> None:
    name = ns["metadata"]["name"]
    labels = ns["metadata"].setdefault("labels", {})
    labels["kubernetes.io/metadata.name"] = name
    ns.setdefault("spec", {})["finalizers"] = ["kubernetes"]
    if "status" not in ns:
        ns["status"] = {"phase": "Active"}


def _namespace_create(ns: Obj, ctx: KindContext) -> list[Cause]:
    _namespace_defaults(ns)
    return []


def _namespace_update(old: Obj, new: Obj, ctx: KindContext) -> list[Cause]:
    _namespace_defaults(new)
    new["spec"] = old.get("spec", new.get("spec"))
    return []


def _node_create(node: Obj, ctx: KindContext) -> list[Cause]:
    node.setdefault("spec", {})
    return []


def _secret_string_data(secret: Obj) -> list[Cause]:
    """stringData is write-only: merged into data (base64) on every write."""
    sd = secret.pop("stringData", None)
    if isinstance(sd, dict) and sd:
        data = secret.setdefault("data", {}) or {}
        for k, v in sd.items():
            data[k] = base64.b64encode(str(v).encode()).decode()
        secret["data"] = data
    secret.setdefault("type", "Opaque")
    return []


_NETPOL = _validate_both(networking.validate_network_policy)
_ENDPOINTS = _validate_both(networking.validate_endpoints)
_SECRET = _validate_both(_secret_string_data)


def _slice_create(es: Obj, ctx: KindContext) -> list[Cause]:
    return networking.validate_endpoint_slice(es)


def _slice_update(old: Obj, new: Obj, ctx: KindContext) -> list[Cause]:
    return networking.validate_endpoint_slice(new, old)


_DEPLOYMENT = workloads.hooks(workloads.deployment_defaults)
_REPLICASET = workloads.hooks(workloads.replicaset_defaults, workloads.REPLICASET_STATUS)
_DAEMONSET = workloads.hooks(workloads.daemonset_defaults, workloads.DAEMONSET_STATUS)
_STATEFULSET = workloads.hooks(workloads.statefulset_defaults, workloads.STATEFULSET_STATUS)
_CRONJOB = workloads.hooks(workloads.cronjob_defaults)


def _workload(hooks: tuple[CreateHook, UpdateHook]) -> KindSpec:
    return KindSpec(reset_status_on_create=True, on_create=hooks[0], on_update=hooks[1])


_RBAC = "rbac.authorization.k8s.io"
KINDS: dict[GR, KindSpec] = {
    NS_GR: KindSpec(
        name_rule=dns1123_label,
        reset_status_on_create=True,
        on_create=_namespace_create,
        on_update=_namespace_update,
        delete_returns_object=True,
    ),
    POD_GR: KindSpec(
        reset_status_on_create=True,
        on_create=pods.on_create,
        on_update=pods.on_update,
        delete_returns_object=True,
        deletion_grace=pods.deletion_grace,
    ),
    ("", "nodes"): KindSpec(name_rule=path_segment, on_create=_node_create),
    SERVICE_GR: KindSpec(
        name_rule=dns1123_label,
        reset_status_on_create=True,
        on_create=services.on_create,
        on_update=services.on_update,
        delete_returns_object=True,
    ),
    ("", "endpoints"): KindSpec(
        fields=frozenset({"subsets"}),
        on_create=_ENDPOINTS[0],
        on_update=_ENDPOINTS[1],
        create_on_update=True,
    ),
    ("", "configmaps"): KindSpec(fields=frozenset({"data", "binaryData", "immutable"})),
    ("", "secrets"): KindSpec(
        fields=frozenset({"data", "stringData", "type", "immutable"}),
        on_create=_SECRET[0],
        on_update=_SECRET[1],
    ),
    EVENT_GR: KindSpec(
        fields=frozenset(
            {
                "involvedObject",
                "reason",
                "message",
                "source",
                "firstTimestamp",
                "lastTimestamp",
                "count",
                "type",
                "eventTime",
                "series",
                "action",
                "related",
                "reportingComponent",
                "reportingInstance",
            }
        ),
        name_rule=path_segment,
        create_on_update=True,
    ),
    ("", "serviceaccounts"): KindSpec(
        fields=frozenset({"secrets", "imagePullSecrets", "automountServiceAccountToken"})
    ),
    ("discovery.k8s.io", "endpointslices"): KindSpec(
        fields=frozenset({"addressType", "endpoints", "ports"}),
        on_create=_slice_create,
        on_update=_slice_update,
    ),
    ("networking.k8s.io", "networkpolicies"): KindSpec(
        fields=frozenset({"spec"}), on_create=_NETPOL[0], on_update=_NETPOL[1]
    ),
    ("coordination.k8s.io", "leases"): KindSpec(fields=frozenset({"spec"})),
    ("apps", "deployments"): _workload(_DEPLOYMENT),
    ("apps", "replicasets"): _workload(_REPLICASET),
    ("apps", "daemonsets"): _workload(_DAEMONSET),
    ("apps", "statefulsets"): _workload(_STATEFULSET),
    ("batch", "jobs"): _workload((workloads.job_create, workloads.job_update)),
    ("batch", "cronjobs"): _workload(_CRONJOB),
    CRD_GR: KindSpec(
        on_create=crds.on_create, on_update=crds.on_update, delete_returns_object=True
    ),
    ("scheduling.k8s.io", "priorityclasses"): KindSpec(
        fields=frozenset({"value", "globalDefault", "description", "preemptionPolicy"})
    ),
    (_RBAC, "roles"): KindSpec(fields=frozenset({"rules"})),
    (_RBAC, "clusterroles"): KindSpec(fields=frozenset({"rules", "aggregationRule"})),
    (_RBAC, "rolebindings"): KindSpec(fields=frozenset({"subjects", "roleRef"})),
    (_RBAC, "clusterrolebindings"): KindSpec(fields=frozenset({"subjects", "roleRef"})),
}
_DEFAULT = KindSpec()


def spec_for(rt: ResourceType) -> KindSpec:
    return KINDS.get(rt.gr, _DEFAULT)


def check_name(rt: ResourceType, name: str) -> list[Cause]:
    return spec_for(rt).name_rule(name)


def unknown_fields(rt: ResourceType, obj: Obj) -> list[str]:
    """Fields of a built-in object its Go type lacks (only the top level
    and metadata are checked; deeper typos pass through)."""
    top = _COMMON_TOP | spec_for(rt).fields
    out = [k for k in obj if k not in top]
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        out += [f"metadata.{k}" for k in meta if k not in META_FIELDS]
    return out


def known_fields(rt: ResourceType, obj: Obj) -> Obj:
    """A built-in object without the fields its Go type lacks."""
    top = _COMMON_TOP | spec_for(rt).fields
    out = {k: v for k, v in obj.items() if k in top}
    meta = out.get("metadata")
    if isinstance(meta, dict):
        out["metadata"] = {k: v for k, v in meta.items() if k in META_FIELDS}
    return out


def prepare_create(rt: ResourceType, obj: Obj, ctx: KindContext) -> list[Cause]:
    spec = spec_for(rt)
    if spec.reset_status_on_create or (rt.custom and rt.status):
        obj.pop("status", None)
    return spec.on_create(obj, ctx) if spec.on_create is not None else []


def prepare_update(rt: ResourceType, old: Obj, new: Obj, ctx: KindContext) -> list[Cause]:
    hook = spec_for(rt).on_update
    return hook(old, new, ctx) if hook is not None else []
