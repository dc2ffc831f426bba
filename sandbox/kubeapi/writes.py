# ruff: noqa: E501  (messages quote the real API server word for word)
"""The writing verbs: create, update (PUT), the three patches and apply, and
pods/binding.

This is where a body becomes a stored object the way the real API server
does it: server-set metadata (uid, creationTimestamp, generation,
generateName), optimistic concurrency on resourceVersion, the status
subresource split, no new finalizers on an object being deleted, and a
write that only empties the last finalizer removing the object. Per-kind
behaviour comes from the `kinds` table; deletion is `deletion`'s.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import yaml

from . import admission, kinds
from .allocation import KindContext
from .errors import ApiError, already_exists, bad_request, conflict, invalid, not_found
from .objects import Objects
from .options import WriteOptions, now_str
from .patch import json_patch, merge_patch, strategic_merge
from .resources import CRD_GR, Obj, ResourceType
from .store import Entry
from .validation import check_metadata, raise_invalid

APPLY_PATCH = "application/apply-patch+yaml"


def _name_mismatch(given: Any, name: str) -> ApiError:
    return bad_request(
        f"the name of the object ({given}) does not match the name on the URL ({name})"
    )


def apply_document(raw: bytes, opts: WriteOptions) -> Obj:
    """The body of a server-side apply request, checked before anything else
    as the API server does for every resource and for the scale subresource:
    a fieldManager is named, and the YAML (or JSON) is an object that sets
    apiVersion and kind."""
    if not opts.field_manager:
        raise bad_request("fieldManager is required for apply requests")
    try:
        doc = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        raise bad_request(f"error decoding YAML: {e}") from None
    if not isinstance(doc, dict) or not doc.get("apiVersion") or not doc.get("kind"):
        raise bad_request("apply: the applied configuration must set apiVersion and kind")
    return doc


class Writes:
    def __init__(self, objects: Objects, ctx: KindContext) -> None:
        self.objects = objects
        self.store = objects.store
        self.ctx = ctx

    async def create(
        self, rt: ResourceType, ns: str, body: Any, opts: WriteOptions
    ) -> tuple[Obj, list[str]]:
        obj = admission.check_body(rt, body, ns)
        meta = obj["metadata"]
        name = admission.name_for_create(self.store, rt, meta)
        causes = kinds.check_name(rt, name) + check_metadata(meta)
        raise_invalid(rt, name, causes)
        admission.check_namespace(self.store, rt, ns)
        key_ns = ns if rt.namespaced else ""
        if self.store.get(rt.gr, key_ns, name) is not None:
            raise already_exists(rt.plural, rt.group, name)
        for k in (
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "resourceVersion",
            "selfLink",
            "managedFields",
        ):
            meta.pop(k, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_str()
        meta["generation"] = 1
        obj, warnings = admission.decode(rt, obj, opts, name)
        meta = obj["metadata"]
        raise_invalid(rt, name, kinds.prepare_create(rt, obj, self.ctx))
        if opts.dry_run:
            return obj, warnings
        if self.store.get(rt.gr, key_ns, name) is not None:
            raise already_exists(rt.plural, rt.group, name)
        return await self.objects.put(rt.gr, obj, None), warnings

    async def update(
        self, rt: ResourceType, ns: str, name: str, body: Any, sub: str, opts: WriteOptions
    ) -> tuple[Obj, list[str], bool]:
        """PUT. Returns (object, warnings, created)."""
        obj = admission.check_body(rt, body, ns)
        meta = obj["metadata"]
        if meta.get("name") not in (None, name):
            raise _name_mismatch(meta.get("name"), name)
        meta["name"] = name
        entry = self.objects.find(rt, ns, name)
        if entry is None:
            if kinds.spec_for(rt).create_on_update and not sub:
                created, warnings = await self.create(rt, ns, obj, opts)
                return created, warnings, True
            raise not_found(rt.plural, rt.group, name)
        rv = meta.get("resourceVersion")
        if not rv and rt.custom:
            raise invalid(
                rt.kind,
                rt.group,
                name,
                [
                    (
                        "metadata.resourceVersion",
                        "FieldValueInvalid",
                        "Invalid value: 0x0: must be specified for an update",
                    )
                ],
            )
        result, warnings = await self._write_update(rt, entry, obj, sub, opts, rv or None)
        return result, warnings, False

    async def patch(
        self,
        rt: ResourceType,
        ns: str,
        name: str,
        ctype: str,
        raw: bytes,
        sub: str,
        opts: WriteOptions,
    ) -> tuple[Obj, list[str]]:
        if ctype == "application/strategic-merge-patch+json" and rt.custom:
            raise ApiError(
                415,
                "strategic merge patch is not supported for custom resources; use application/merge-patch+json or application/json-patch+json",
                "UnsupportedMediaType",
            )
        if ctype == APPLY_PATCH:
            return await self._apply(rt, ns, name, raw, sub, opts)
        if ctype not in (
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
        ):
            raise ApiError(
                415,
                f"the body of the request was in an unknown format - accepted media types "
                f"include: application/json-patch+json, application/merge-patch+json, "
                f"application/apply-patch+yaml{', application/strategic-merge-patch+json' if not rt.custom else ''}",
                "UnsupportedMediaType",
            )
        try:
            patch_doc = json.loads(raw)
        except ValueError as e:
            raise bad_request(f"error decoding patch: {e}") from None
        entry = self.objects.get(rt, ns, name)
        current = json.loads(entry.raw)  # a private copy, faster than deepcopy
        current["apiVersion"] = rt.api_version  # a custom object read through this version
        if ctype == "application/json-patch+json":
            patched = json_patch(current, patch_doc)
        elif not isinstance(patch_doc, dict):
            raise bad_request("the patch must be a JSON object")
        elif ctype == "application/merge-patch+json":
            patched = merge_patch(current, patch_doc)
        else:
            patched = strategic_merge(current, patch_doc)
        if not isinstance(patched, dict):
            raise bad_request("the patched object must be a JSON object")
        patched.setdefault("metadata", {})
        if not isinstance(patched["metadata"], dict):
            raise bad_request("metadata: must be an object")
        want_rv = None
        if isinstance(patch_doc, dict):
            want_rv = (patch_doc.get("metadata") or {}).get("resourceVersion")
        elif patched["metadata"].get("resourceVersion") != entry.obj["metadata"].get(
            "resourceVersion"
        ):
            want_rv = patched["metadata"].get("resourceVersion")
        if patched["metadata"].get("name", name) != name:
            raise _name_mismatch(patched["metadata"].get("name"), name)
        patched = admission.check_body(rt, patched, ns)
        return await self._write_update(rt, entry, patched, sub, opts, want_rv)

    async def _apply(
        self, rt: ResourceType, ns: str, name: str, raw: bytes, sub: str, opts: WriteOptions
    ) -> tuple[Obj, list[str]]:
        """Server-side apply, approximated: create if absent, else merge the
        applied configuration in (strategic for built-ins). Field ownership
        (managedFields, conflicts, removing fields a manager stopped applying)
        is not tracked."""
        doc = apply_document(raw, opts)
        meta = doc.setdefault("metadata", {})
        if not isinstance(meta, dict) or meta.get("name", name) != name:
            raise _name_mismatch(meta.get("name"), name)
        meta["name"] = name
        entry = self.objects.find(rt, ns, name)
        if entry is None:
            if sub:
                raise not_found(rt.plural, rt.group, name)
            return await self.create(rt, ns, doc, opts)
        current = json.loads(entry.raw)
        current["apiVersion"] = rt.api_version
        patched = merge_patch(current, doc) if rt.custom else strategic_merge(current, doc)
        patched = admission.check_body(rt, patched, ns)
        want = meta.get("resourceVersion")
        return await self._write_update(rt, entry, patched, sub, opts, want)

    async def write_over(
        self, rt: ResourceType, entry: Entry, new: Obj, opts: WriteOptions, want_rv: str | None
    ) -> tuple[Obj, list[str]]:
        """Replace a stored object with `new` as an update does (hooks,
        generation, optimistic concurrency on want_rv): for a subresource
        that writes part of its parent (scale)."""
        return await self._write_update(rt, entry, new, "", opts, want_rv)

    async def _write_update(
        self,
        rt: ResourceType,
        entry: Entry,
        new: Obj,
        sub: str,
        opts: WriteOptions,
        want_rv: str | None,
    ) -> tuple[Obj, list[str]]:
        old = entry.obj
        name = old["metadata"]["name"]
        if want_rv is not None and str(want_rv) != old["metadata"]["resourceVersion"]:
            raise conflict(
                rt.plural,
                rt.group,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            )
        warnings: list[str] = []
        if sub == "status":
            result = dict(old)
            result["metadata"] = dict(old["metadata"])
            if "status" in new:
                result["status"] = new["status"]
            else:
                result.pop("status", None)
            if rt.custom:
                result, warnings = admission.decode(rt, result, opts, name)
        else:
            meta = new["metadata"]
            raise_invalid(rt, name, check_metadata(meta))
            for k in (
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ):
                if k in old["metadata"]:
                    meta[k] = old["metadata"][k]
                else:
                    meta.pop(k, None)
            meta.pop("managedFields", None)
            meta.pop("selfLink", None)
            if rt.status:
                if "status" in old:
                    new["status"] = old["status"]
                else:
                    new.pop("status", None)
            result, warnings = admission.decode(rt, new, opts, name)
            meta = result["metadata"]
            raise_invalid(rt, name, kinds.prepare_update(rt, old, result, self.ctx))
            if old["metadata"].get("deletionTimestamp"):
                added = set(meta.get("finalizers") or []) - set(
                    old["metadata"].get("finalizers") or []
                )
                if added:
                    raise invalid(
                        rt.kind,
                        rt.group,
                        name,
                        [
                            (
                                "metadata.finalizers",
                                "FieldValueForbidden",
                                f"Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{', '.join(json.dumps(a) for a in sorted(added))}}}",
                            )
                        ],
                    )
            if _generation_changes(rt, old, result):
                meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
        result["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if result == old:
            return old, warnings  # a no-op write changes nothing, not even the version
        if opts.dry_run:
            return result, warnings
        if self.objects.removable(result):
            return await self.objects.remove(rt.gr, result), warnings
        return await self.objects.put(rt.gr, result, old), warnings

    async def bind(self, rt: ResourceType, ns: str, name: str, body: Any) -> None:
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("target"), dict)
            or not body["target"].get("name")
        ):
            raise invalid(
                "Binding", "", name, [("target.name", "FieldValueRequired", "Required value")]
            )
        entry = self.objects.get(rt, ns, name)
        node = body["target"]["name"]
        spec = entry.obj.get("spec") or {}
        if spec.get("nodeName"):
            raise conflict(
                rt.plural,
                rt.group,
                name,
                f'pod {name} is already assigned to node "{spec["nodeName"]}"',
            )
        new = json.loads(entry.raw)
        new["spec"]["nodeName"] = node
        await self.objects.put(rt.gr, new, entry.obj)


def _generation_changes(rt: ResourceType, old: Obj, new: Obj) -> bool:
    if rt.custom or rt.gr == CRD_GR:
        strip = ("metadata", "status")
        return {k: v for k, v in old.items() if k not in strip} != {
            k: v for k, v in new.items() if k not in strip
        }
    return old.get("spec") != new.get("spec")
