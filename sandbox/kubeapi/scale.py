# ruff: noqa: E501  (messages quote the real API server word for word)
"""The scale subresource (`.../deployments/NAME/scale`, likewise
replicasets and statefulsets): the parent seen and written as an
autoscaling/v1 Scale, which `kubectl scale` and autoscalers use.

A Scale is a view: its metadata is the parent's (name, namespace, uid,
resourceVersion, creationTimestamp), spec.replicas the parent's
spec.replicas, status.replicas the parent's status.replicas and
status.selector the parent's spec.selector in string form. Writing it
(PUT, or a patch of any kind applied to the current Scale) writes the
parent's spec.replicas as an update does (its hooks, generation,
resourceVersion, watch event), with optimistic concurrency when the Scale
carries a resourceVersion. A Scale with no spec.replicas scales to 0, as
the field is omitted when zero.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import ApiError, bad_request, invalid
from .options import WriteOptions
from .patch import json_patch, merge_patch, strategic_merge
from .resources import Obj, ResourceType
from .selectors import selector_string
from .writes import APPLY_PATCH, Writes, apply_document

API_VERSION = "autoscaling/v1"
KIND = "Scale"
_GROUP = "autoscaling"


def to_scale(obj: Obj) -> Obj:
    meta = obj["metadata"]
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    out_meta = {
        k: meta[k]
        for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
        if k in meta
    }
    scale_spec: Obj = {}
    if spec.get("replicas"):
        scale_spec["replicas"] = spec["replicas"]
    scale_status: Obj = {"replicas": int(status.get("replicas") or 0)}
    sel = selector_string(spec.get("selector"))
    if sel:
        scale_status["selector"] = sel
    return {
        "kind": KIND,
        "apiVersion": API_VERSION,
        "metadata": out_meta,
        "spec": scale_spec,
        "status": scale_status,
    }


def _replicas(scale: Obj, name: str) -> int:
    spec = scale.get("spec")
    if spec is None:
        return 0
    if not isinstance(spec, dict):
        raise bad_request(
            'Scale in version "v1" cannot be handled as a Scale: json: cannot unmarshal into Go struct field Scale.spec of type v1.ScaleSpec'
        )
    r = spec.get("replicas", 0)
    if r is None:
        return 0
    if isinstance(r, bool) or not isinstance(r, int):
        raise bad_request(
            f'Scale in version "v1" cannot be handled as a Scale: json: cannot unmarshal {type(r).__name__} into Go struct field ScaleSpec.spec.replicas of type int32'
        )
    if r < 0:
        raise invalid(
            KIND,
            _GROUP,
            name,
            [
                (
                    "spec.replicas",
                    "FieldValueInvalid",
                    f"Invalid value: {r}: must be greater than or equal to 0",
                )
            ],
        )
    return r


def _check_scale(body: Any, ns: str, name: str) -> Obj:
    if not isinstance(body, dict):
        raise bad_request("the body of the request must be a JSON object of kind Scale")
    api_version = body.get("apiVersion")
    if api_version not in (None, "", API_VERSION):
        raise bad_request(
            f"the API version in the data ({api_version}) does not match the expected API version ({API_VERSION})"
        )
    kind = body.get("kind")
    if kind not in (None, "", KIND):
        raise bad_request(
            f"the kind in the data ({kind}) does not match the expected kind ({KIND})"
        )
    meta = body.get("metadata") or {}
    if not isinstance(meta, dict):
        raise bad_request("metadata: must be an object")
    if meta.get("name") not in (None, "", name):
        raise bad_request(
            f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
        )
    if meta.get("namespace") not in (None, "", ns):
        raise bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    return body


class Scales:
    """GET, PUT and PATCH of a workload's scale subresource."""

    def __init__(self, writes: Writes) -> None:
        self.writes = writes
        self.objects = writes.objects

    def get(self, rt: ResourceType, ns: str, name: str) -> Obj:
        return to_scale(self.objects.get(rt, ns, name).obj)

    async def update(
        self, rt: ResourceType, ns: str, name: str, body: Any, opts: WriteOptions
    ) -> tuple[Obj, list[str]]:
        scale = _check_scale(body, ns, name)
        want = (scale.get("metadata") or {}).get("resourceVersion") or None
        return await self._write(rt, ns, name, scale, opts, want)

    async def patch(
        self, rt: ResourceType, ns: str, name: str, ctype: str, raw: bytes, opts: WriteOptions
    ) -> tuple[Obj, list[str]]:
        current = to_scale(self.objects.get(rt, ns, name).obj)
        want: str | None = None
        if ctype == APPLY_PATCH:
            doc = apply_document(raw, opts)
            _check_scale(doc, ns, name)
            patched = merge_patch(current, doc)
            want = (doc.get("metadata") or {}).get("resourceVersion")
        elif ctype in (
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
        ):
            try:
                doc = json.loads(raw)
            except ValueError as e:
                raise bad_request(f"error decoding patch: {e}") from None
            if ctype == "application/json-patch+json":
                patched = json_patch(current, doc)
                if isinstance(patched, dict):
                    rv = (patched.get("metadata") or {}).get("resourceVersion")
                    if rv != current["metadata"].get("resourceVersion"):
                        want = rv
            elif not isinstance(doc, dict):
                raise bad_request("the patch must be a JSON object")
            else:
                merge = merge_patch if ctype == "application/merge-patch+json" else strategic_merge
                patched = merge(current, doc)
                want = (doc.get("metadata") or {}).get("resourceVersion")
        else:
            raise ApiError(
                415,
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json",
                "UnsupportedMediaType",
            )
        scale = _check_scale(patched, ns, name)
        return await self._write(rt, ns, name, scale, opts, want)

    async def _write(
        self,
        rt: ResourceType,
        ns: str,
        name: str,
        scale: Obj,
        opts: WriteOptions,
        want_rv: str | None,
    ) -> tuple[Obj, list[str]]:
        replicas = _replicas(scale, name)
        entry = self.objects.get(rt, ns, name)
        new = json.loads(entry.raw)  # a private copy of the parent
        new.setdefault("spec", {})["replicas"] = replicas
        obj, warnings = await self.writes.write_over(
            rt, entry, new, opts, str(want_rv) if want_rv is not None else None
        )
        return to_scale(obj), warnings
