"""The checks a request body passes before any verb acts on it.

Shared by create, update, patch and apply: the body must be an object of
the URL's kind and version in the URL's namespace; that namespace must exist
and not be terminating; unknown fields are dropped, warned about or refused
as the request's fieldValidation asks, and custom objects meet their CRD
schema; a created object's name is given or generated.
"""

from __future__ import annotations

import secrets
from typing import Any

from . import kinds
from .errors import ApiError, bad_request, invalid, not_found
from .options import WriteOptions
from .resources import NS_GR, Obj, ResourceType
from .schema import check_object
from .store import Store
from .validation import show

_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def check_body(rt: ResourceType, body: Any, ns: str) -> Obj:
    """The body as an object of this kind, addressed like the URL."""
    if not isinstance(body, dict):
        raise bad_request(f"the body of the request must be a JSON object of kind {rt.kind}")
    api_version = body.get("apiVersion")
    if api_version is not None and api_version != rt.api_version:
        raise bad_request(
            f"the API version in the data ({api_version}) does not match the expected "
            f"API version ({rt.api_version})"
        )
    kind = body.get("kind")
    if kind is not None and kind != rt.kind:
        raise bad_request(
            f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})"
        )
    body["apiVersion"], body["kind"] = rt.api_version, rt.kind
    meta = body.get("metadata")
    if meta is None:
        meta = body["metadata"] = {}
    if not isinstance(meta, dict):
        raise bad_request("metadata: must be an object")
    if rt.namespaced:
        body_ns = meta.get("namespace")
        if body_ns not in (None, "", ns):
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request"
            )
        meta["namespace"] = ns
    else:
        meta.pop("namespace", None)
    return body


def check_namespace(store: Store, rt: ResourceType, ns: str) -> None:
    """A namespaced object needs its namespace, and one not being deleted."""
    if not rt.namespaced:
        return
    entry = store.get(NS_GR, "", ns)
    if entry is None:
        raise not_found("namespaces", "", ns)
    if entry.obj["metadata"].get("deletionTimestamp"):
        raise ApiError(
            403,
            f"{rt.plural}{'.' + rt.group if rt.group else ''} is forbidden: unable to create "
            f"new content in namespace {ns} because it is being terminated",
            "Forbidden",
            {
                "name": "",
                "kind": rt.plural,
                "causes": [
                    {
                        "reason": "NamespaceTerminating",
                        "message": f"namespace {ns} is being terminated",
                        "field": "metadata.namespace",
                    }
                ],
            },
        )


def decode(rt: ResourceType, obj: Obj, opts: WriteOptions, name: str) -> tuple[Obj, list[str]]:
    """What the server keeps of the object, and the warnings it answers with:
    unknown fields dropped (or refused under strict field validation), a
    custom object checked against its schema."""
    if rt.custom:
        pruned, unknown, causes = check_object(rt.schema, obj)
    else:
        pruned, unknown, causes = kinds.known_fields(rt, obj), kinds.unknown_fields(rt, obj), []
    if causes:
        raise invalid(rt.kind, rt.group, name, causes)
    if unknown and opts.field_validation == "Strict":
        fields = ", ".join(f'unknown field "{u}"' for u in unknown)
        raise bad_request(
            f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
            f"strict decoding error: {fields}"
        )
    warnings = [f'unknown field "{u}"' for u in unknown] if opts.field_validation == "Warn" else []
    return pruned, warnings


def name_for_create(store: Store, rt: ResourceType, meta: Obj) -> str:
    """metadata.name, or one made from generateName (and set in meta)."""
    name = meta.get("name")
    if not name:
        gen = meta.get("generateName")
        if not gen:
            raise invalid(
                rt.kind,
                rt.group,
                "",
                [
                    (
                        "metadata.name",
                        "FieldValueRequired",
                        "Required value: name or generateName is required",
                    )
                ],
            )
        for _ in range(8):
            name = gen + "".join(secrets.choice(_GENERATE_ALPHABET) for _ in range(5))
            if store.get(rt.gr, meta.get("namespace", ""), name) is None:
                break
        meta["name"] = name
    if not isinstance(name, str):
        raise invalid(
            rt.kind,
            rt.group,
            str(name),
            [
                (
                    "metadata.name",
                    "FieldValueInvalid",
                    f"Invalid value: {show(name)}: must be a string",
                )
            ],
        )
    return name
