# ruff: noqa: E501  (messages quote the real API server word for word)
"""The CustomResourceDefinition kind: validation, defaulting and the status
the real API server's CRD controllers would write (names accepted,
Established, storedVersions).

The server here establishes a CRD in the same request that creates it, so
the status is written with the object; serving the CRD's resources is the
registry's part (see `objects`), checking custom objects is `schema`'s.
"""

from __future__ import annotations

from .allocation import KindContext
from .errors import Cause
from .options import now_str
from .resources import Obj
from .schema import validate_crd_schema
from .validation import show


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
                f"Invalid value: {show(group)}: should be a domain with at least one dot",
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
                f'Invalid value: {show(name)}: must be spec.names.plural+"."+spec.group',
            )
        )
    scope = spec.get("scope")
    if scope not in ("Namespaced", "Cluster"):
        causes.append(
            (
                "spec.scope",
                "FieldValueNotSupported",
                f'Unsupported value: {show(scope)}: supported values: "Cluster", "Namespaced"',
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


def on_create(crd: Obj, ctx: KindContext) -> list[Cause]:
    _crd_defaults(crd)
    causes = _crd_validate(crd)
    if not causes:
        crd["status"] = crd_status(crd, crd["metadata"]["creationTimestamp"])
    return causes


def on_update(old: Obj, new: Obj, ctx: KindContext) -> list[Cause]:
    _crd_defaults(new)
    causes = _crd_validate(new)
    if not causes and (new["spec"].get("scope") != old["spec"].get("scope")):
        causes.append(
            (
                "spec.scope",
                "FieldValueInvalid",
                f"Invalid value: {show(new['spec'].get('scope'))}: field is immutable",
            )
        )
    if not causes:
        new["status"] = crd_status(new, now_str())
    return causes
