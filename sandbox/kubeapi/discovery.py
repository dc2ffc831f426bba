"""Discovery and OpenAPI documents: how clients learn what is served.

kubectl maps kinds to URLs with legacy discovery (/api, /apis and each
group-version's APIResourceList), and before `create -f` it checks the
OpenAPI v3 document of the object's group-version for a PATCH operation of
that kind accepting `fieldValidation`; finding it, kubectl leaves validation
to the server (strict field validation) instead of downloading OpenAPI v2
for client-side checks. So each group-version gets a small v3 document
with those operations, and custom resources carry their CRD schema.

A `kind: List` has no such operation, so for it kubectl does download
OpenAPI v2 (as gnostic protobuf) and checks each item against the
definition of its kind; the v2 document served here has no definitions,
so kubectl checks only that every item names its apiVersion and kind and
the server then validates each item as it is written.
"""

from __future__ import annotations

import hashlib
import json

from .protobuf.wire import encode_field
from .registry import Registry
from .resources import VERBS, Obj, ResourceType

VERSION: Obj = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-kovn-sandbox",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def api_versions(server_address: str) -> Obj:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _group(name: str, versions: list[str]) -> Obj:
    vs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": vs, "preferredVersion": vs[0]}


def api_group_list(reg: Registry) -> Obj:
    groups = [_group(g, vs) for g, vs in reg.groups().items() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(reg: Registry, name: str) -> Obj | None:
    vs = reg.groups().get(name)
    if not vs or not name:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name, vs)}


AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def wants_aggregated(accept: str) -> bool:
    """Whether the client asked for aggregated discovery (apidiscovery v2)."""
    for part in accept.split(","):
        params = {
            k.strip(): v.strip() for k, _, v in (p.partition("=") for p in part.split(";")[1:])
        }
        if (
            params.get("g") == "apidiscovery.k8s.io"
            and params.get("v") == "v2"
            and params.get("as") == "APIGroupDiscoveryList"
        ):
            return True
    return False


def _add_names(r: Obj, rt: ResourceType) -> None:
    """Short names and categories, which kubectl resolves `get NAME` with."""
    if rt.short_names:
        r["shortNames"] = list(rt.short_names)
    if rt.categories:
        r["categories"] = list(rt.categories)


# Subresources beyond status: name -> (group, version, kind) of what they
# accept and answer, and their verbs.
_EXTRA_SUBRESOURCES: dict[str, tuple[str, str, str, list[str]]] = {
    "binding": ("", "v1", "Binding", ["create"]),
    "eviction": ("policy", "v1", "Eviction", ["create"]),
    "scale": ("autoscaling", "v1", "Scale", ["get", "patch", "update"]),
}


def _aggregated_resource(rt: ResourceType) -> Obj:
    kind = {"group": rt.group, "version": rt.version, "kind": rt.kind}
    r: Obj = {
        "resource": rt.plural,
        "responseKind": kind,
        "scope": "Namespaced" if rt.namespaced else "Cluster",
        "singularResource": rt.singular_name,
        "verbs": VERBS,
    }
    _add_names(r, rt)
    subs: list[Obj] = []
    if rt.status:
        subs.append(
            {"subresource": "status", "responseKind": kind, "verbs": ["get", "patch", "update"]}
        )
    for sub, (group, version, kind_name, verbs) in _EXTRA_SUBRESOURCES.items():
        if sub in rt.extra_subresources:
            sub_kind = {"group": group, "version": version, "kind": kind_name}
            subs.append({"subresource": sub, "responseKind": sub_kind, "verbs": verbs})
    if subs:
        r["subresources"] = subs
    return r


def aggregated(reg: Registry, legacy: bool) -> Obj:
    """The APIGroupDiscoveryList for /api (legacy) or /apis: one document
    instead of one request per group-version."""
    items = []
    for group, versions in reg.groups().items():
        if (group == "") != legacy:
            continue
        item: Obj = {"metadata": {"name": group} if group else {}, "versions": []}
        for v in versions:
            item["versions"].append(
                {
                    "version": v,
                    "resources": [
                        _aggregated_resource(rt) for rt in reg.in_group_version(group, v)
                    ],
                    "freshness": "Current",
                }
            )
        items.append(item)
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    }


def resource_list(reg: Registry, group: str, version: str) -> Obj | None:
    rts = reg.in_group_version(group, version)
    if not rts:
        return None
    resources: list[Obj] = []
    for rt in rts:
        r: Obj = {
            "name": rt.plural,
            "singularName": rt.singular_name,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": VERBS,
        }
        _add_names(r, rt)
        resources.append(r)
        if rt.status:
            resources.append(
                {
                    "name": f"{rt.plural}/status",
                    "singularName": "",
                    "namespaced": rt.namespaced,
                    "kind": rt.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
        for sub, (sub_group, sub_version, kind, verbs) in _EXTRA_SUBRESOURCES.items():
            if sub in rt.extra_subresources:
                entry: Obj = {
                    "name": f"{rt.plural}/{sub}",
                    "singularName": "",
                    "namespaced": rt.namespaced,
                    "kind": kind,
                    "verbs": verbs,
                }
                if sub_group:
                    entry.update(group=sub_group, version=sub_version)
                resources.append(entry)
    gv = f"{group}/{version}" if group else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }


def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def _params() -> list[Obj]:
    return [
        {"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
        for n in ("dryRun", "fieldManager", "fieldValidation", "force")
    ]


def _gvk(rt: ResourceType) -> Obj:
    return {"group": rt.group, "version": rt.version, "kind": rt.kind}


def _schema_name(rt: ResourceType) -> str:
    rev = ".".join(reversed(rt.group.split("."))) if rt.group else "io.k8s.api.core"
    return f"{rev}.{rt.version}.{rt.kind}"


def openapi_gv(reg: Registry, group: str, version: str) -> Obj | None:
    rts = reg.in_group_version(group, version)
    if not rts:
        return None
    paths: Obj = {}
    schemas: Obj = {}
    base = "/" + _gv_path(group, version)
    for rt in rts:
        prefix = (
            f"{base}/namespaces/{{namespace}}/{rt.plural}"
            if rt.namespaced
            else f"{base}/{rt.plural}"
        )
        ref = {"$ref": f"#/components/schemas/{_schema_name(rt)}"}
        ok = {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}}
        op = {"x-kubernetes-group-version-kind": _gvk(rt), "parameters": _params(), "responses": ok}
        paths[prefix] = {
            "post": {**op, "operationId": f"create{rt.kind}", "x-kubernetes-action": "post"}
        }
        paths[prefix + "/{name}"] = {
            "get": {
                "x-kubernetes-group-version-kind": _gvk(rt),
                "responses": ok,
                "operationId": f"read{rt.kind}",
                "x-kubernetes-action": "get",
            },
            "put": {**op, "operationId": f"replace{rt.kind}", "x-kubernetes-action": "put"},
            "patch": {**op, "operationId": f"patch{rt.kind}", "x-kubernetes-action": "patch"},
        }
        schema: Obj = (
            dict(rt.schema)
            if rt.schema
            else {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        )
        schema["x-kubernetes-group-version-kind"] = [_gvk(rt)]
        schemas[_schema_name(rt)] = schema
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def openapi_root(reg: Registry) -> Obj:
    paths: Obj = {}
    for group, versions in reg.groups().items():
        for v in versions:
            doc = openapi_gv(reg, group, v)
            digest = (
                hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32].upper()
            )
            p = _gv_path(group, v)
            paths[p] = {"serverRelativeURL": f"/openapi/v3/{p}?hash={digest}"}
    return {"paths": paths}


OPENAPI_V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"


def openapi_v2(accept: str) -> tuple[bytes, str]:
    """The OpenAPI v2 document (body, media type): gnostic protobuf when
    the client asks for it (kubectl does), else JSON. Its fields in the
    protobuf form: swagger = 1, info = 2 (title = 1, version = 2),
    paths = 8, definitions = 9."""
    title, version = "Kubernetes", VERSION["gitVersion"]
    if "protobuf" in accept:
        info = encode_field(1, title) + encode_field(2, version)
        body = (
            encode_field(1, "2.0")
            + encode_field(2, info)
            + encode_field(8, b"")
            + encode_field(9, b"")
        )
        return body, OPENAPI_V2_PROTOBUF
    doc = {"swagger": "2.0", "info": {"title": title, "version": version}, "paths": {}}
    return json.dumps({**doc, "definitions": {}}).encode(), "application/json"
