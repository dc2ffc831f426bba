"""The kinds this API server serves, and how each is addressed.

A `ResourceType` is what discovery advertises and what routing resolves a URL
to: group, version, plural, kind, scope, short names and subresources.
Built-in kinds are listed here; custom resources get one per served version
of an established CRD (see `from_crd`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# A Kubernetes object as decoded JSON, and a kind's storage identity
# (group, plural) shared by all its served versions.
Obj = dict[str, Any]
GR = tuple[str, str]

NS_GR: GR = ("", "namespaces")
POD_GR: GR = ("", "pods")
SERVICE_GR: GR = ("", "services")
EVENT_GR: GR = ("", "events")
CRD_GR: GR = ("apiextensions.k8s.io", "customresourcedefinitions")

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    singular: str = ""
    status: bool = False
    categories: tuple[str, ...] = ()
    # Set for custom resources: the OpenAPI v3 schema and printer columns.
    schema: dict[str, Any] | None = None
    printer_columns: tuple[dict[str, Any], ...] = ()
    custom: bool = False
    crd_name: str = ""
    extra_subresources: tuple[str, ...] = field(default=())

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def gr(self) -> GR:
        """Group and plural: the storage identity shared by all versions."""
        return (self.group, self.plural)

    @property
    def singular_name(self) -> str:
        return self.singular or self.kind.lower()


def _core(
    plural: str, kind: str, namespaced: bool, short: tuple[str, ...] = (), **kw: Any
) -> ResourceType:
    return ResourceType("", "v1", plural, kind, namespaced, short, **kw)


BUILTIN: list[ResourceType] = [
    _core("namespaces", "Namespace", False, ("ns",), status=True),
    _core(
        "pods",
        "Pod",
        True,
        ("po",),
        status=True,
        categories=("all",),
        extra_subresources=("binding", "eviction"),
    ),
    _core("nodes", "Node", False, ("no",), status=True),
    _core("services", "Service", True, ("svc",), status=True, categories=("all",)),
    _core("endpoints", "Endpoints", True, ("ep",)),
    _core("configmaps", "ConfigMap", True, ("cm",)),
    _core("secrets", "Secret", True),
    _core("events", "Event", True, ("ev",)),
    _core("serviceaccounts", "ServiceAccount", True, ("sa",)),
    _core("persistentvolumeclaims", "PersistentVolumeClaim", True, ("pvc",), status=True),
    _core("persistentvolumes", "PersistentVolume", False, ("pv",), status=True),
    _core("resourcequotas", "ResourceQuota", True, ("quota",), status=True),
    ResourceType("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
    ResourceType("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, ("netpol",)),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease", True),
    ResourceType(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        ("crd", "crds"),
        status=True,
    ),
    # The workloads: defaulted here (`workloads`), run by the sandbox's
    # controllers (sandbox/controllers), scaled through `scale`.
    *(
        ResourceType(
            "apps",
            "v1",
            plural,
            kind,
            True,
            short,
            status=True,
            categories=("all",),
            extra_subresources=subs,
        )
        for plural, kind, short, subs in (
            ("deployments", "Deployment", ("deploy",), ("scale",)),
            ("daemonsets", "DaemonSet", ("ds",), ()),
            ("replicasets", "ReplicaSet", ("rs",), ("scale",)),
            ("statefulsets", "StatefulSet", ("sts",), ("scale",)),
        )
    ),
    ResourceType("batch", "v1", "jobs", "Job", True, (), status=True, categories=("all",)),
    ResourceType(
        "batch", "v1", "cronjobs", "CronJob", True, ("cj",), status=True, categories=("all",)
    ),
    ResourceType("networking.k8s.io", "v1", "ingresses", "Ingress", True, ("ing",), status=True),
    ResourceType("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False, ("pc",)),
    ResourceType(
        "policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, ("pdb",), status=True
    ),
    *(
        ResourceType("rbac.authorization.k8s.io", "v1", plural, kind, namespaced)
        for plural, kind, namespaced in (
            ("roles", "Role", True),
            ("rolebindings", "RoleBinding", True),
            ("clusterroles", "ClusterRole", False),
            ("clusterrolebindings", "ClusterRoleBinding", False),
        )
    ),
]


def from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """One ResourceType per served version of a CRD."""
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    out = []
    for ver in spec.get("versions", []):
        if not ver.get("served", True):
            continue
        sub = ver.get("subresources") or {}
        schema = (ver.get("schema") or {}).get("openAPIV3Schema")
        out.append(
            ResourceType(
                group=spec.get("group", ""),
                version=ver["name"],
                plural=names.get("plural", ""),
                kind=names.get("kind", ""),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                singular=names.get("singular", ""),
                status="status" in sub,
                categories=tuple(names.get("categories") or ()),
                schema=schema,
                printer_columns=tuple(ver.get("additionalPrinterColumns") or ()),
                custom=True,
                crd_name=crd["metadata"]["name"],
            )
        )
    return out
