# ruff: noqa: E501  (messages quote the real API server word for word)
"""The field-error vocabulary every kind's validation shares.

Kept apart from the per-kind rules (`kinds`, `pods`, `services`, `crds`,
`networking`) because all of them speak it: how a value is quoted in a
message, the three name rules Kubernetes applies to metadata.name, the
checks on labels, annotations and finalizers every object gets, and the
metadata fields a built-in object may carry.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from .errors import Cause, invalid
from .resources import Obj, ResourceType

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

NameRule = Callable[[str], list[Cause]]


def show(v: Any) -> str:
    """A value as Kubernetes quotes it in a field error (Go's %q, roughly)."""
    return json.dumps(v)


def _bad_name(message: str) -> list[Cause]:
    return [("metadata.name", "FieldValueInvalid", message)]


def dns1123_label(name: str) -> list[Cause]:
    """Names that become DNS labels (namespaces, services)."""
    if len(name) > 63 or not _DNS1123_LABEL.match(name):
        return _bad_name(
            f"Invalid value: {show(name)}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        )
    return []


def dns1123_subdomain(name: str) -> list[Cause]:
    """The default rule for object names."""
    if len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        return _bad_name(
            f"Invalid value: {show(name)}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        )
    return []


def path_segment(name: str) -> list[Cause]:
    """Names that need only be usable in a URL path (events, nodes)."""
    if len(name) <= 253 and "/" not in name:
        return []
    return _bad_name(f"Invalid value: {show(name)}: may not contain '/'")


def check_metadata(meta: Obj) -> list[Cause]:
    """Labels, annotations and finalizers, as every kind's metadata is checked."""
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
                    f"Invalid value: {show(k)}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                )
            )
        if not isinstance(v, str) or len(v) > 63 or not _LABEL_VALUE.match(v):
            causes.append(
                (
                    "metadata.labels",
                    "FieldValueInvalid",
                    f"Invalid value: {show(v)}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
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


# The real server decodes built-ins into Go structs: metadata fields ObjectMeta
# lacks are dropped (with a warning) or, under strict field validation, rejected.
META_FIELDS = frozenset(
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


def raise_invalid(rt: ResourceType, name: str, causes: list[Cause]) -> None:
    if causes:
        raise invalid(rt.kind, rt.group, name, causes)
