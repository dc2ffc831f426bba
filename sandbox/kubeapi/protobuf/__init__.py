"""Protobuf request bodies (application/vnd.kubernetes.protobuf).

kubectl sends the objects its generators build (`kubectl create namespace|
deployment|service|configmap|secret|job|role|...`, `kubectl run`) as
protobuf, not JSON, and a real API server accepts them; this package
turns such a body into the JSON object the API keeps, for the built-in
kinds listed in `OBJECTS` (and the Binding and Eviction subresource
bodies typed clients post). Answers stay JSON, which kubectl accepts as
well.

Layout: `wire` (the wire format), `envelope` (the `k8s\\x00` +
runtime.Unknown wrapper), `table` (the field notation and the message
registry), `meta`, `core`, `groups` (the message tables, this project's
own transcription of the published field numbers), `convert` (message to
JSON by Go's JSON rules). Policy for what cannot be read: a malformed body
is `WireError` (the API answers 400); a kind without a table, an encoded
body or a field number the table lacks is `Unsupported` (415, naming the
kind and the field), so nothing is silently dropped.
"""

from __future__ import annotations

from typing import Any

from . import core, groups, meta  # noqa: F401  (they register the message tables)
from .convert import UnknownField, decode_message
from .envelope import unwrap
from .table import MESSAGES, check_references
from .wire import WireError

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"

# (apiVersion, kind) -> the object's message.
OBJECTS: dict[tuple[str, str], str] = {
    **{
        ("v1", k): k
        for k in (
            "Namespace",
            "ConfigMap",
            "Secret",
            "ServiceAccount",
            "Service",
            "Pod",
            "ResourceQuota",
            "Binding",
        )
    },
    ("apps/v1", "Deployment"): "Deployment",
    ("batch/v1", "Job"): "Job",
    ("batch/v1", "CronJob"): "CronJob",
    **{
        ("rbac.authorization.k8s.io/v1", k): k
        for k in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")
    },
    ("policy/v1", "PodDisruptionBudget"): "PodDisruptionBudget",
    ("policy/v1", "Eviction"): "Eviction",
    ("scheduling.k8s.io/v1", "PriorityClass"): "PriorityClass",
    ("networking.k8s.io/v1", "Ingress"): "Ingress",
}

check_references()


class Unsupported(Exception):
    """A well-formed body this server cannot read as protobuf."""


def decode(body: bytes) -> dict[str, Any]:
    """The JSON object of a protobuf request body.

    Raises WireError for a malformed body and Unsupported for one this
    server has no table for (or whose table lacks a field it carries).
    """
    try:
        env = unwrap(body)
    except UnknownField as e:
        raise Unsupported(f"the protobuf envelope: {e}") from None
    if env.content_encoding:
        raise Unsupported(f"protobuf content encoding {env.content_encoding!r} is not supported")
    if env.content_type not in ("", MEDIA_TYPE):
        raise Unsupported(f"protobuf envelope content type {env.content_type!r} is not supported")
    what = f"{env.api_version} {env.kind}".strip()
    name = OBJECTS.get((env.api_version, env.kind))
    if name is None:
        raise Unsupported(
            f"{what or 'an object without apiVersion and kind'} cannot be decoded from "
            "protobuf by this server; send it as JSON"
        )
    try:
        obj = decode_message(MESSAGES[name], env.raw)
    except UnknownField as e:
        raise Unsupported(f"{what}: {e}; send it as JSON") from None
    except WireError as e:
        raise WireError(f"{what}: {e}") from None
    return {"apiVersion": env.api_version, "kind": env.kind, **obj}


__all__ = ["MEDIA_TYPE", "OBJECTS", "Unsupported", "WireError", "decode"]
