# ruff: noqa: E501  (messages quote the real API server word for word)
"""What the real API server does per kind on create and update: defaulting,
validation, status reset, and the few allocations it owns (Service cluster
IPs and node ports).

Only the behaviour kovn and kubectl can observe is reproduced; anything
else passes through untouched.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from . import networking
from .errors import ApiError, invalid
from .resources import ResourceType
from .schema import validate_crd_schema

Obj = dict[str, Any]
Cause = tuple[str, str, str]

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

NETPOL_GR = ("networking.k8s.io", "networkpolicies")
SLICE_GR = ("discovery.k8s.io", "endpointslices")
# Kinds whose name is a DNS-1123 label rather than a subdomain.
_LABEL_NAMED = {("", "namespaces"), ("", "services")}
# Kinds whose status is reset on create (the status subresource owns it).
_STATUS_RESET_ON_CREATE = {("", "pods"), ("", "services"), ("", "namespaces")}


def _show(v: Any) -> str:
    import json

    return json.dumps(v)


def check_name(rt: ResourceType, name: str) -> list[Cause]:
    if rt.gr in _LABEL_NAMED:
        if len(name) > 63 or not _DNS1123_LABEL.match(name):
            return [
                (
                    "metadata.name",
                    "FieldValueInvalid",
                    f"Invalid value: {_show(name)}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                )
            ]
        return []
    if rt.gr in {("", "events"), ("", "nodes")}:
        return (
            []
            if len(name) <= 253 and "/" not in name
            else [
                (
                    "metadata.name",
                    "FieldValueInvalid",
                    f"Invalid value: {_show(name)}: may not contain '/'",
                )
            ]
        )
    if len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        return [
            (
                "metadata.name",
                "FieldValueInvalid",
                f"Invalid value: {_show(name)}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            )
        ]
    return []


def check_metadata(meta: Obj) -> list[Cause]:
    causes: list[Cause] = []
    labels = meta.get("labels")
    if labels is not None and not isinstance(labels, dict):
        return [
            ("metadata.labels", "FieldValueTypeInvalid", "Invalid value: must be a map of strings")
        ]
    for k, v in (labels or {}).items():
        prefix, _, name = k.rpartition("/")
        if (
            not name
            or len(name) > 63
            or not _LABEL_NAME.match(name)
            or (prefix and not _DNS1123_SUBDOMAIN.match(prefix))
        ):
            causes.append(
                (
                    "metadata.labels",
                    "FieldValueInvalid",
                    f"Invalid value: {_show(k)}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                )
            )
        if not isinstance(v, str) or len(v) > 63 or not _LABEL_VALUE.match(v):
            causes.append(
                (
                    "metadata.labels",
                    "FieldValueInvalid",
                    f"Invalid value: {_show(v)}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                )
            )
    ann = meta.get("annotations")
    if ann is not None and (
        not isinstance(ann, dict) or not all(isinstance(v, str) for v in ann.values())
    ):
        causes.append(
            (
                "metadata.annotations",
                "FieldValueTypeInvalid",
                "Invalid value: annotations must be a map of strings",
            )
        )
    fin = meta.get("finalizers")
    if fin is not None and (not isinstance(fin, list) or not all(isinstance(f, str) for f in fin)):
        causes.append(
            (
                "metadata.finalizers",
                "FieldValueTypeInvalid",
                "Invalid value: finalizers must be a list of strings",
            )
        )
    return causes


# ---- pods ------------------------------------------------------------------
def _pod_defaults(pod: Obj) -> None:
    spec = pod.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("priority", 0)
    if "serviceAccountName" not in spec:
        spec["serviceAccountName"] = spec.get("serviceAccount", "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    for c in spec.get("containers") or []:
        if isinstance(c, dict):
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            c.setdefault("resources", {})
            tag = str(c.get("image", "")).rsplit("/", 1)[-1]
            latest = ":" not in tag or tag.endswith(":latest")
            c.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
            for p in c.get("ports") or []:
                if isinstance(p, dict):
                    p.setdefault("protocol", "TCP")


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
                    f"Duplicate value: {_show(c['name'])}",
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
                f'Unsupported value: {_show(rp)}: supported values: "Always", "OnFailure", "Never"',
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


# ---- services --------------------------------------------------------------
class ServiceAllocator:
    """Cluster IPs and node ports, allocated the way the apiserver does."""

    def __init__(self, cidr: str = "10.96.0.0/16") -> None:
        self.net = ipaddress.ip_network(cidr)
        self._next = 10

    def allocate_ip(self, used: set[str]) -> str:
        size = self.net.num_addresses
        for _ in range(size):
            off = self._next
            self._next = self._next + 1 if self._next + 1 < size - 1 else 2
            ip = str(self.net.network_address + off)
            if ip not in used:
                return ip
        raise ApiError(
            500, "Internal error: failed to allocate a serviceIP: range is full", "InternalError"
        )

    def allocate_port(self, used: set[int]) -> int:
        for port in range(30000, 32768):
            if port not in used:
                return port
        raise ApiError(422, "failed to allocate a nodePort: range is full", "Invalid")


def _service_prepare(
    svc: Obj, others: list[Obj], alloc: ServiceAllocator, old: Obj | None
) -> list[Cause]:
    spec = svc.setdefault("spec", {})
    if not isinstance(spec, dict):
        return [("spec", "FieldValueTypeInvalid", "Invalid value: must be an object")]
    stype = spec.setdefault("type", "ClusterIP")
    if stype not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
        return [
            (
                "spec.type",
                "FieldValueNotSupported",
                f'Unsupported value: {_show(stype)}: supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"',
            )
        ]
    spec.setdefault("sessionAffinity", "None")
    causes: list[Cause] = []
    ports = spec.get("ports") or []
    if not ports and stype != "ExternalName" and spec.get("clusterIP") != "None":
        causes.append(("spec.ports", "FieldValueRequired", "Required value"))
    for i, p in enumerate(ports):
        if not isinstance(p, dict) or not isinstance(p.get("port"), int):
            causes.append((f"spec.ports[{i}].port", "FieldValueRequired", "Required value"))
            continue
        p.setdefault("protocol", "TCP")
        p.setdefault("targetPort", p["port"])
        if p["protocol"] not in ("TCP", "UDP", "SCTP"):
            causes.append(
                (
                    f"spec.ports[{i}].protocol",
                    "FieldValueNotSupported",
                    f'Unsupported value: {_show(p["protocol"])}: supported values: "SCTP", "TCP", "UDP"',
                )
            )
    seen: set[tuple[Any, Any]] = set()
    for i, p in enumerate(ports):
        if not isinstance(p, dict) or not isinstance(p.get("port"), int):
            continue
        if not 1 <= p["port"] <= 65535:
            causes.append(
                (
                    f"spec.ports[{i}].port",
                    "FieldValueInvalid",
                    f"Invalid value: {p['port']}: must be between 1 and 65535, inclusive",
                )
            )
        if (p["port"], p.get("protocol")) in seen:
            causes.append(
                (
                    f"spec.ports[{i}]",
                    "FieldValueDuplicate",
                    f'Duplicate value: core.ServicePort{{Port:{p["port"]}, Protocol:"{p.get("protocol")}"}}',
                )
            )
        seen.add((p["port"], p.get("protocol")))
        node_port = p.get("nodePort")
        if node_port is not None and (
            not isinstance(node_port, int) or not 30000 <= node_port <= 32767
        ):
            causes.append(
                (
                    f"spec.ports[{i}].nodePort",
                    "FieldValueInvalid",
                    f"Invalid value: {_show(node_port)}: provided port is not in the valid range. The range of valid ports is 30000-32767",
                )
            )
    if len(ports) > 1:
        for i, p in enumerate(ports):
            if isinstance(p, dict) and not p.get("name"):
                causes.append((f"spec.ports[{i}].name", "FieldValueRequired", "Required value"))
    if spec.get("sessionAffinity") not in ("None", "ClientIP"):
        causes.append(
            (
                "spec.sessionAffinity",
                "FieldValueNotSupported",
                f'Unsupported value: {_show(spec.get("sessionAffinity"))}: supported values: "ClientIP", "None"',
            )
        )
    if causes:
        return causes
    if stype == "ExternalName":
        return []
    if old is not None and (old.get("spec") or {}).get("clusterIP"):
        ospec = old["spec"]
        if spec.get("clusterIP") not in (None, "", ospec["clusterIP"]):
            return [
                (
                    "spec.clusterIPs[0]",
                    "FieldValueInvalid",
                    f"Invalid value: {_show(spec['clusterIP'])}: may not change once set",
                )
            ]
        spec["clusterIP"] = ospec["clusterIP"]
        spec["clusterIPs"] = ospec.get("clusterIPs", [ospec["clusterIP"]])
    else:
        used = {(o.get("spec") or {}).get("clusterIP") for o in others}
        ip = spec.get("clusterIP")
        if ip in (None, ""):
            ip = alloc.allocate_ip({u for u in used if u})
        elif ip != "None":
            try:
                addr = ipaddress.ip_address(ip)
            except ValueError:
                return [
                    (
                        "spec.clusterIPs[0]",
                        "FieldValueInvalid",
                        f"Invalid value: {_show(ip)}: must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                    )
                ]
            if addr not in alloc.net:
                return [
                    (
                        "spec.clusterIPs",
                        "FieldValueInvalid",
                        f'Invalid value: []string{{"{ip}"}}: failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {alloc.net}',
                    )
                ]
            if ip in used:
                return [
                    (
                        "spec.clusterIPs",
                        "FieldValueInvalid",
                        f'Invalid value: []string{{"{ip}"}}: failed to allocate IP {ip}: provided IP is already allocated',
                    )
                ]
        spec["clusterIP"] = ip
        spec["clusterIPs"] = [ip]
    if spec["clusterIP"] != "None":
        spec.setdefault("ipFamilies", ["IPv6" if ":" in spec["clusterIP"] else "IPv4"])
    else:
        spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    if stype in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
        used_ports = {
            p.get("nodePort")
            for o in others
            for p in ((o.get("spec") or {}).get("ports") or [])
            if isinstance(p, dict)
        }
        for p in ports:
            if not p.get("nodePort"):
                p["nodePort"] = alloc.allocate_port({u for u in used_ports if u})
                used_ports.add(p["nodePort"])
    return []


# ---- CRDs ------------------------------------------------------------------
def _crd_validate(crd: Obj) -> list[Cause]:
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return [("spec", "FieldValueRequired", "Required value")]
    causes: list[Cause] = []
    group = spec.get("group") or ""
    names = spec.get("names") or {}
    plural = names.get("plural") or ""
    if not group:
        causes.append(("spec.group", "FieldValueRequired", "Required value"))
    elif "." not in group:
        causes.append(
            (
                "spec.group",
                "FieldValueInvalid",
                f"Invalid value: {_show(group)}: should be a domain with at least one dot",
            )
        )
    if not plural:
        causes.append(("spec.names.plural", "FieldValueRequired", "Required value"))
    if not names.get("kind"):
        causes.append(("spec.names.kind", "FieldValueRequired", "Required value"))
    name = crd.get("metadata", {}).get("name")
    if plural and group and name != f"{plural}.{group}":
        causes.append(
            (
                "metadata.name",
                "FieldValueInvalid",
                f'Invalid value: {_show(name)}: must be spec.names.plural+"."+spec.group',
            )
        )
    scope = spec.get("scope")
    if scope not in ("Namespaced", "Cluster"):
        causes.append(
            (
                "spec.scope",
                "FieldValueNotSupported",
                f'Unsupported value: {_show(scope)}: supported values: "Cluster", "Namespaced"',
            )
        )
    versions = spec.get("versions") or []
    if not versions:
        causes.append(
            (
                "spec.versions",
                "FieldValueInvalid",
                "Invalid value: []apiextensions.CustomResourceDefinitionVersion(nil): must have exactly one version marked as storage version",
            )
        )
    elif sum(1 for v in versions if isinstance(v, dict) and v.get("storage")) != 1:
        causes.append(
            (
                "spec.versions",
                "FieldValueInvalid",
                "Invalid value: must have exactly one version marked as storage version",
            )
        )
    for i, v in enumerate(versions):
        if not isinstance(v, dict) or not v.get("name"):
            causes.append((f"spec.versions[{i}].name", "FieldValueRequired", "Required value"))
            continue
        schema = (v.get("schema") or {}).get("openAPIV3Schema")
        if schema is None:
            causes.append(
                (
                    f"spec.versions[{i}].schema.openAPIV3Schema",
                    "FieldValueRequired",
                    "Required value: schemas are required",
                )
            )
        else:
            validate_crd_schema(schema, f"spec.versions[{i}].schema.openAPIV3Schema", causes)
    return causes


def crd_status(crd: Obj, now: str) -> Obj:
    spec = crd["spec"]
    storage = [v["name"] for v in spec.get("versions", []) if v.get("storage")]
    old = crd.get("status") or {}
    stored = list(old.get("storedVersions") or [])
    for s in storage:
        if s not in stored:
            stored.append(s)
    names = dict(spec.get("names") or {})
    names.setdefault("singular", names.get("kind", "").lower())
    names.setdefault("listKind", names.get("kind", "") + "List")
    return {
        "acceptedNames": names,
        "conditions": [
            {
                "type": "NamesAccepted",
                "status": "True",
                "reason": "NoConflicts",
                "message": "no conflicts found",
                "lastTransitionTime": now,
            },
            {
                "type": "Established",
                "status": "True",
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
                "lastTransitionTime": now,
            },
        ],
        "storedVersions": stored,
    }


def _crd_defaults(crd: Obj) -> None:
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    if names.get("kind"):
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", names["kind"] + "List")
    spec.setdefault("conversion", {"strategy": "None"})


# ---- field sets of the built-in kinds --------------------------------------
# The real server decodes built-ins into Go structs: fields they lack are
# dropped (with a warning) or, under strict field validation, rejected. Only
# the top level and metadata are checked here; deeper typos pass through.
_META_FIELDS = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    }
)
_COMMON_TOP = frozenset({"apiVersion", "kind", "metadata"})
_SPEC_STATUS = frozenset({"spec", "status"})
_TOP_FIELDS: dict[tuple[str, str], frozenset[str]] = {
    ("", "namespaces"): _SPEC_STATUS,
    ("", "pods"): _SPEC_STATUS,
    ("", "nodes"): _SPEC_STATUS,
    ("", "services"): _SPEC_STATUS,
    ("", "endpoints"): frozenset({"subsets"}),
    ("", "configmaps"): frozenset({"data", "binaryData", "immutable"}),
    ("", "secrets"): frozenset({"data", "stringData", "type", "immutable"}),
    ("", "events"): frozenset(
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
    ("", "serviceaccounts"): frozenset(
        {"secrets", "imagePullSecrets", "automountServiceAccountToken"}
    ),
    ("discovery.k8s.io", "endpointslices"): frozenset({"addressType", "endpoints", "ports"}),
    ("networking.k8s.io", "networkpolicies"): frozenset({"spec"}),
    ("coordination.k8s.io", "leases"): frozenset({"spec"}),
    ("apiextensions.k8s.io", "customresourcedefinitions"): _SPEC_STATUS,
    ("rbac.authorization.k8s.io", "roles"): frozenset({"rules"}),
    ("rbac.authorization.k8s.io", "clusterroles"): frozenset({"rules", "aggregationRule"}),
    ("rbac.authorization.k8s.io", "rolebindings"): frozenset({"subjects", "roleRef"}),
    ("rbac.authorization.k8s.io", "clusterrolebindings"): frozenset({"subjects", "roleRef"}),
}


def unknown_fields(rt: ResourceType, obj: Obj) -> list[str]:
    top = _COMMON_TOP | _TOP_FIELDS.get(rt.gr, _SPEC_STATUS)
    out = [k for k in obj if k not in top]
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        out += [f"metadata.{k}" for k in meta if k not in _META_FIELDS]
    return out


def known_fields(rt: ResourceType, obj: Obj) -> Obj:
    top = _COMMON_TOP | _TOP_FIELDS.get(rt.gr, _SPEC_STATUS)
    out = {k: v for k, v in obj.items() if k in top}
    meta = out.get("metadata")
    if isinstance(meta, dict):
        out["metadata"] = {k: v for k, v in meta.items() if k in _META_FIELDS}
    return out


def _secret_string_data(secret: Obj) -> None:
    """stringData is write-only: merged into data (base64) on every write."""
    import base64

    sd = secret.pop("stringData", None)
    if isinstance(sd, dict) and sd:
        data = secret.setdefault("data", {}) or {}
        for k, v in sd.items():
            data[k] = base64.b64encode(str(v).encode()).decode()
        secret["data"] = data
    secret.setdefault("type", "Opaque")


# ---- entry points ----------------------------------------------------------
def prepare_create(rt: ResourceType, obj: Obj, ctx: KindContext) -> list[Cause]:
    gr = rt.gr
    if gr in _STATUS_RESET_ON_CREATE or (rt.custom and rt.status):
        obj.pop("status", None)
    if gr == ("", "pods"):
        _pod_defaults(obj)
        causes = _pod_validate(obj)
        obj["status"] = {"phase": "Pending", "qosClass": _qos(obj)}
        return causes
    if gr == ("", "namespaces"):
        _namespace_defaults(obj)
        return []
    if gr == ("", "services"):
        obj["status"] = {"loadBalancer": {}}
        return _service_prepare(obj, ctx.services(), ctx.allocator, None)
    if gr == ("apiextensions.k8s.io", "customresourcedefinitions"):
        _crd_defaults(obj)
        return _crd_validate(obj)
    if gr == ("", "nodes"):
        obj.setdefault("spec", {})
    if gr == ("", "secrets"):
        _secret_string_data(obj)
    if gr == NETPOL_GR:
        return networking.validate_network_policy(obj)
    if gr == ("", "endpoints"):
        return networking.validate_endpoints(obj)
    if gr == SLICE_GR:
        return networking.validate_endpoint_slice(obj)
    return []


def prepare_update(rt: ResourceType, old: Obj, new: Obj, ctx: KindContext) -> list[Cause]:
    gr = rt.gr
    if gr == NETPOL_GR:
        return networking.validate_network_policy(new)
    if gr == ("", "endpoints"):
        return networking.validate_endpoints(new)
    if gr == SLICE_GR:
        return networking.validate_endpoint_slice(new, old)
    if gr == ("", "secrets"):
        _secret_string_data(new)
    if gr == ("", "pods"):
        _pod_defaults(new)
        return _pod_validate(new) or _pod_immutable(old, new)
    if gr == ("", "namespaces"):
        _namespace_defaults(new)
        new["spec"] = old.get("spec", new.get("spec"))
        return []
    if gr == ("", "services"):
        others = [
            s for s in ctx.services() if s["metadata"].get("uid") != old["metadata"].get("uid")
        ]
        return _service_prepare(new, others, ctx.allocator, old)
    if gr == ("apiextensions.k8s.io", "customresourcedefinitions"):
        _crd_defaults(new)
        causes = _crd_validate(new)
        if not causes and (new["spec"].get("scope") != old["spec"].get("scope")):
            causes.append(
                (
                    "spec.scope",
                    "FieldValueInvalid",
                    f"Invalid value: {_show(new['spec'].get('scope'))}: field is immutable",
                )
            )
        return causes
    return []


def _namespace_defaults(ns: Obj) -> None:
    name = ns["metadata"]["name"]
    labels = ns["metadata"].setdefault("labels", {})
    labels["kubernetes.io/metadata.name"] = name
    ns.setdefault("spec", {})["finalizers"] = ["kubernetes"]
    if "status" not in ns:
        ns["status"] = {"phase": "Active"}


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


class KindContext:
    """What kind hooks may look at beyond the object itself."""

    def __init__(self, allocator: ServiceAllocator, services: Any) -> None:
        self.allocator = allocator
        self._services = services

    def services(self) -> list[Obj]:
        result: list[Obj] = self._services()
        return result


def raise_invalid(rt: ResourceType, name: str, causes: list[Cause]) -> None:
    if causes:
        raise invalid(rt.kind, rt.group, name, causes)
