# ruff: noqa: E501  (messages quote the real API server word for word)
"""The semantics of the Kubernetes verbs over the store.

This is where a request becomes a stored object the way the real API server
does it: server-set metadata (uid, creationTimestamp, resourceVersion,
generation, generateName), namespace checks, optimistic concurrency, the
status subresource split, finalizers and graceful pod deletion, namespace
termination, CRD-driven schema checks and serving. The HTTP layer only
parses requests and renders results.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import json
import secrets
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import structlog
import yaml

from . import kinds
from .controllers import FOREGROUND, Controllers
from .errors import ApiError, already_exists, bad_request, conflict, gone, invalid, not_found
from .options import DeleteOptions, WriteOptions, now_str
from .patch import json_patch, merge_patch, strategic_merge
from .registry import Registry
from .resources import CRD_GR, ResourceType
from .schema import check_object
from .selectors import FieldReq, Requirement, fields_match, labels_match
from .store import Entry, Obj, Store

log = structlog.get_logger(__name__)

NS_GR = ("", "namespaces")
POD_GR = ("", "pods")
# Kinds that PUT may create (AllowCreateOnUpdate in the real server).
_CREATE_ON_UPDATE = {("", "endpoints"), ("", "events")}
APPLY = "application/apply-patch+yaml"
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


@dataclass
class ListResult:
    items: list[Entry]
    rv: int
    continue_token: str
    remaining: int | None


class Api:
    def __init__(self, store: Store, registry: Registry, allocator: kinds.ServiceAllocator) -> None:
        self.store = store
        self.registry = registry
        self.ctx = kinds.KindContext(allocator, self._services)
        self._snapshots: OrderedDict[str, tuple[int, list[Entry]]] = OrderedDict()
        self.controllers = Controllers(self)

    # ---- helpers -----------------------------------------------------------
    def _services(self) -> list[Obj]:
        return [e.obj for e in self.store.objects.get(("", "services"), {}).values()]

    async def drain(self) -> None:
        """Stop the controllers once their started work is done."""
        await self.controllers.stop()

    def resume(self) -> None:
        """After a restart: serve stored CRDs, let the controllers catch up."""
        for e in self.store.objects.get(CRD_GR, {}).values():
            self.registry.set_crd(e.obj)
        self.controllers.resume()

    def _check_namespace(self, rt: ResourceType, ns: str) -> None:
        if not rt.namespaced:
            return
        entry = self.store.get(NS_GR, "", ns)
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

    def _check_body(self, rt: ResourceType, body: Any, ns: str) -> Obj:
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

    def _schema(
        self, rt: ResourceType, obj: Obj, opts: WriteOptions, name: str
    ) -> tuple[Obj, list[str]]:
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
        warnings = (
            [f'unknown field "{u}"' for u in unknown] if opts.field_validation == "Warn" else []
        )
        return pruned, warnings

    # ---- reads -------------------------------------------------------------
    def get(self, rt: ResourceType, ns: str, name: str) -> Entry:
        entry = self.store.get(rt.gr, ns if rt.namespaced else "", name)
        if entry is None:
            raise not_found(rt.plural, rt.group, name)
        return entry

    def list_objects(
        self,
        rt: ResourceType,
        ns: str | None,
        labels: list[Requirement],
        fields: list[FieldReq],
        limit: int,
        cont: str,
    ) -> ListResult:
        if cont:
            rv, start, snap_id = _decode_continue(cont)
            snap = self._snapshots.get(snap_id)
            if snap is None:
                raise gone(
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter."
                )
            rv, items = snap
        else:
            start, snap_id = 0, ""
            rv = self.store.rv
            node = next((f.value for f in fields if f.key == "spec.nodeName" and f.equal), None)
            scope = ns if rt.namespaced else None
            candidates = (
                self.store.pods_on_node(scope, node)
                if rt.gr == POD_GR and node is not None
                else self.store.entries(rt.gr, scope)
            )
            items = [
                e
                for _, e in candidates
                if labels_match(labels, e.obj) and fields_match(fields, e.obj)
            ]
        if limit <= 0 or start + limit >= len(items):
            if snap_id:
                self._snapshots.pop(snap_id, None)
            return ListResult(items[start:], rv, "", None)
        if not snap_id:
            snap_id = secrets.token_hex(8)
            self._snapshots[snap_id] = (rv, items)
            while len(self._snapshots) > 256:
                self._snapshots.popitem(last=False)
        end = start + limit
        token = _encode_continue(rv, end, snap_id)
        return ListResult(items[start:end], rv, token, len(items) - end)

    # ---- create ------------------------------------------------------------
    async def create(
        self, rt: ResourceType, ns: str, body: Any, opts: WriteOptions
    ) -> tuple[Obj, list[str]]:
        obj = self._check_body(rt, body, ns)
        meta = obj["metadata"]
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
                if self.store.get(rt.gr, meta.get("namespace", ""), name) is None:
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
                        f"Invalid value: {json.dumps(name)}: must be a string",
                    )
                ],
            )
        causes = kinds.check_name(rt, name) + kinds.check_metadata(meta)
        kinds.raise_invalid(rt, name, causes)
        self._check_namespace(rt, ns)
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
        obj, warnings = self._schema(rt, obj, opts, name)
        meta = obj["metadata"]
        kinds.raise_invalid(rt, name, kinds.prepare_create(rt, obj, self.ctx))
        if rt.gr == CRD_GR:
            obj["status"] = kinds.crd_status(obj, meta["creationTimestamp"])
        if opts.dry_run:
            return obj, warnings
        if self.store.get(rt.gr, key_ns, name) is not None:
            raise already_exists(rt.plural, rt.group, name)
        entry, fut = self.store.put(rt.gr, obj, None)
        self._after_write(rt, entry.obj, None)
        await fut
        return entry.obj, warnings

    def _after_write(self, rt: ResourceType, obj: Obj, old: Obj | None) -> None:
        if rt.gr == CRD_GR:
            self.registry.set_crd(obj)
        elif rt.gr == NS_GR and old is None:
            # The service-account controller's job: every namespace has "default".
            self.controllers.spawn(self.controllers.ensure_default_sa(obj["metadata"]["name"]))

    # ---- update / patch ----------------------------------------------------
    async def update(
        self, rt: ResourceType, ns: str, name: str, body: Any, sub: str, opts: WriteOptions
    ) -> tuple[Obj, list[str], bool]:
        """PUT. Returns (object, warnings, created)."""
        obj = self._check_body(rt, body, ns)
        meta = obj["metadata"]
        if meta.get("name") not in (None, name):
            raise bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
            )
        meta["name"] = name
        entry = self.store.get(rt.gr, ns if rt.namespaced else "", name)
        if entry is None:
            if rt.gr in _CREATE_ON_UPDATE and not sub:
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
        if ctype == APPLY:
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
        entry = self.get(rt, ns, name)
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
            raise bad_request(
                f"the name of the object ({patched['metadata'].get('name')}) does not match the name on the URL ({name})"
            )
        patched = self._check_body(rt, patched, ns)
        return await self._write_update(rt, entry, patched, sub, opts, want_rv)

    async def _apply(
        self, rt: ResourceType, ns: str, name: str, raw: bytes, sub: str, opts: WriteOptions
    ) -> tuple[Obj, list[str]]:
        """Server-side apply, approximated: create if absent, else merge the
        applied configuration in (strategic for built-ins). Field ownership
        (managedFields, conflicts, removing fields a manager stopped applying)
        is not tracked."""
        if not opts.field_manager:
            raise bad_request("fieldManager is required for apply requests")
        try:
            doc = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise bad_request(f"error decoding YAML: {e}") from None
        if not isinstance(doc, dict) or not doc.get("apiVersion") or not doc.get("kind"):
            raise bad_request("apply: the applied configuration must set apiVersion and kind")
        meta = doc.setdefault("metadata", {})
        if not isinstance(meta, dict) or meta.get("name", name) != name:
            raise bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
            )
        meta["name"] = name
        entry = self.store.get(rt.gr, ns if rt.namespaced else "", name)
        if entry is None:
            if sub:
                raise not_found(rt.plural, rt.group, name)
            return await self.create(rt, ns, doc, opts)
        current = json.loads(entry.raw)
        current["apiVersion"] = rt.api_version
        patched = merge_patch(current, doc) if rt.custom else strategic_merge(current, doc)
        patched = self._check_body(rt, patched, ns)
        want = meta.get("resourceVersion")
        return await self._write_update(rt, entry, patched, sub, opts, want)

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
                result, warnings = self._schema(rt, result, opts, name)
        else:
            meta = new["metadata"]
            kinds.raise_invalid(rt, name, kinds.check_metadata(meta))
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
            result, warnings = self._schema(rt, new, opts, name)
            meta = result["metadata"]
            kinds.raise_invalid(rt, name, kinds.prepare_update(rt, old, result, self.ctx))
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
        if rt.gr == CRD_GR and sub != "status":
            result["status"] = kinds.crd_status(result, now_str())
        result["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if result == old:
            return old, warnings  # a no-op write changes nothing, not even the version
        if opts.dry_run:
            return result, warnings
        if self.removable(result):
            final, fut = self.store.remove(rt.gr, result)
            self.after_remove(rt, final)
            await fut
            return final, warnings
        stored, fut = self.store.put(rt.gr, result, old)
        self._after_write(rt, stored.obj, old)
        await fut
        return stored.obj, warnings

    @staticmethod
    def removable(obj: Obj) -> bool:
        meta = obj["metadata"]
        return bool(
            meta.get("deletionTimestamp")
            and not meta.get("finalizers")
            and not meta.get("deletionGracePeriodSeconds")
        )

    # ---- delete ------------------------------------------------------------
    async def delete(
        self, rt: ResourceType, ns: str, name: str, opts: DeleteOptions
    ) -> tuple[Obj, bool]:
        """Returns (object, removed now)."""
        entry = self.get(rt, ns, name)
        obj = entry.obj
        meta = obj["metadata"]
        if opts.precondition_uid is not None and opts.precondition_uid != meta.get("uid"):
            raise conflict(
                rt.plural,
                rt.group,
                name,
                f"Precondition failed: UID in precondition: {opts.precondition_uid}, UID in object meta: {meta.get('uid')}",
            )
        if opts.precondition_rv is not None and opts.precondition_rv != meta.get("resourceVersion"):
            raise conflict(
                rt.plural,
                rt.group,
                name,
                f"Precondition failed: ResourceVersion in precondition: {opts.precondition_rv}, ResourceVersion in object meta: {meta.get('resourceVersion')}",
            )
        if opts.grace_period is not None and opts.grace_period < 0:
            opts.grace_period = 1
        if opts.propagation not in (None, "", "Background", "Foreground", "Orphan"):
            raise bad_request(
                f'propagationPolicy: Unsupported value: "{opts.propagation}": supported values: '
                '"Background", "Foreground", "Orphan"'
            )
        if opts.propagation == "Orphan" and not opts.dry_run:
            await self.controllers.orphan(meta.get("uid", ""))
            entry = self.get(rt, ns, name)
            obj, meta = entry.obj, entry.obj["metadata"]
        if (
            opts.propagation == "Foreground"
            and not opts.dry_run
            and self.store.dependents(meta.get("uid", ""))
            and FOREGROUND not in (meta.get("finalizers") or [])
        ):
            # The owner waits, marked, until the collector has removed every
            # dependent; then the finalizer goes and so does the owner.
            new = json.loads(entry.raw)
            new["metadata"]["finalizers"] = [*(meta.get("finalizers") or []), FOREGROUND]
            new["metadata"].setdefault("deletionTimestamp", now_str())
            new["metadata"].setdefault("deletionGracePeriodSeconds", 0)
            stored, fut = self.store.put(rt.gr, new, obj)
            await fut
            for dep in self.store.dependents(meta.get("uid", "")):
                self.controllers.spawn(self.controllers.collect(dep, force=True))
            return stored.obj, False
        new = dict(obj)
        new_meta = new["metadata"] = dict(meta)
        if rt.gr == NS_GR:
            return await self._delete_namespace(rt, entry, opts)
        grace = 0
        if rt.gr == POD_GR:
            spec = obj.get("spec") or {}
            phase = (obj.get("status") or {}).get("phase")
            bound = bool(spec.get("nodeName")) and phase not in ("Succeeded", "Failed")
            if bound:
                grace = (
                    opts.grace_period
                    if opts.grace_period is not None
                    else int(spec.get("terminationGracePeriodSeconds", 30))
                )
        if grace > 0:
            current = meta.get("deletionGracePeriodSeconds")
            if meta.get("deletionTimestamp") and current is not None and current <= grace:
                return obj, False
            new_meta["deletionTimestamp"] = now_str(grace)
            new_meta["deletionGracePeriodSeconds"] = grace
        else:
            if not meta.get("finalizers"):
                if opts.dry_run:
                    return obj, True
                final, fut = self.store.remove(rt.gr, obj)
                self.after_remove(rt, final)
                await fut
                return final, True
            if meta.get("deletionTimestamp") and not meta.get("deletionGracePeriodSeconds"):
                return obj, False
            new_meta.setdefault("deletionTimestamp", now_str())
            new_meta["deletionGracePeriodSeconds"] = 0
        if opts.dry_run:
            return new, False
        if self.removable(new):
            final, fut = self.store.remove(rt.gr, new)
            self.after_remove(rt, final)
            await fut
            return final, True
        stored, fut = self.store.put(rt.gr, new, obj)
        await fut
        return stored.obj, False

    def after_remove(self, rt: ResourceType, final: Obj) -> None:
        if rt.gr == CRD_GR:
            self._drop_crd(final)

    def _drop_crd(self, crd: Obj) -> None:
        spec = crd.get("spec") or {}
        gr = (spec.get("group", ""), (spec.get("names") or {}).get("plural", ""))
        self.registry.drop_crd(crd["metadata"]["name"])
        futs = [self.store.remove(gr, obj)[1] for obj in list(self.store.drop_gr(gr))]

        async def end_watches() -> None:
            # Watchers see every object's DELETED event, then their stream ends.
            await asyncio.gather(*futs, return_exceptions=True)
            self.store.end_watches(gr)

        self.controllers.spawn(end_watches())

    async def delete_collection(
        self,
        rt: ResourceType,
        ns: str | None,
        labels: list[Requirement],
        fields: list[FieldReq],
        opts: DeleteOptions,
    ) -> list[Obj]:
        targets = [
            e.obj
            for _, e in self.store.entries(rt.gr, ns if rt.namespaced else None)
            if labels_match(labels, e.obj) and fields_match(fields, e.obj)
        ]
        out = []
        for t in targets:
            try:
                obj, _ = await self.delete(
                    rt,
                    t["metadata"].get("namespace", ""),
                    t["metadata"]["name"],
                    DeleteOptions(opts.grace_period, None, None, opts.propagation, opts.dry_run),
                )
                out.append(obj)
            except ApiError as e:
                if e.code != 404:
                    raise
        return out

    # ---- namespaces --------------------------------------------------------
    async def _delete_namespace(
        self, rt: ResourceType, entry: Entry, opts: DeleteOptions
    ) -> tuple[Obj, bool]:
        obj = entry.obj
        if obj["metadata"].get("deletionTimestamp"):
            return obj, False
        if opts.dry_run:
            return obj, False
        new = copy.deepcopy(obj)
        new["metadata"]["deletionTimestamp"] = now_str()
        new["metadata"]["deletionGracePeriodSeconds"] = 0
        new.setdefault("status", {})["phase"] = "Terminating"
        stored, fut = self.store.put(NS_GR, new, obj)
        await fut
        self.controllers.spawn(self.controllers.terminate_namespace(new["metadata"]["name"]))
        return stored.obj, False

    # ---- namespaces/finalize -----------------------------------------------
    async def finalize_namespace(self, name: str, body: Any) -> Obj:
        """PUT namespaces/NAME/finalize: only spec.finalizers changes; an
        emptied list lets a terminating namespace go once it is empty."""
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object of kind Namespace")
        if (body.get("metadata") or {}).get("name", name) != name:
            raise bad_request("the name of the object does not match the name on the URL")
        finalizers = (body.get("spec") or {}).get("finalizers") or []
        if not isinstance(finalizers, list) or not all(isinstance(f, str) for f in finalizers):
            raise invalid(
                "Namespace",
                "",
                name,
                [
                    (
                        "spec.finalizers",
                        "FieldValueTypeInvalid",
                        "Invalid value: must be a list of strings",
                    )
                ],
            )
        entry = self.store.get(NS_GR, "", name)
        if entry is None:
            raise not_found("namespaces", "", name)
        new = json.loads(entry.raw)
        new.setdefault("spec", {})["finalizers"] = finalizers
        if new == entry.obj:
            return entry.obj
        stored, fut = self.store.put(NS_GR, new, entry.obj)
        await fut
        if new["metadata"].get("deletionTimestamp") and not finalizers:
            self.controllers.spawn(self.controllers.finish_namespace(name))
        return stored.obj

    # ---- pods/binding ------------------------------------------------------
    async def bind(self, rt: ResourceType, ns: str, name: str, body: Any) -> None:
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("target"), dict)
            or not body["target"].get("name")
        ):
            raise invalid(
                "Binding", "", name, [("target.name", "FieldValueRequired", "Required value")]
            )
        entry = self.get(rt, ns, name)
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
        _, fut = self.store.put(rt.gr, new, entry.obj)
        await fut

    # ---- bootstrap ---------------------------------------------------------
    async def bootstrap(self) -> None:
        """First start: the namespaces and CRDs a fresh cluster has."""
        ns_rt = self.registry.lookup("", "v1", "namespaces")
        assert ns_rt is not None
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            if self.store.get(NS_GR, "", ns) is None:
                await self.create(ns_rt, "", {"metadata": {"name": ns}}, WriteOptions())
        crd_rt = self.registry.lookup(*CRD_GR[:1], "v1", CRD_GR[1])
        assert crd_rt is not None
        if self.store.get(CRD_GR, "", NAD_CRD["metadata"]["name"]) is None:
            await self.create(crd_rt, "", copy.deepcopy(NAD_CRD), WriteOptions())
        await self.controllers.settle()


def _generation_changes(rt: ResourceType, old: Obj, new: Obj) -> bool:
    if rt.custom or rt.gr == CRD_GR:
        strip = ("metadata", "status")
        return {k: v for k, v in old.items() if k not in strip} != {
            k: v for k, v in new.items() if k not in strip
        }
    return old.get("spec") != new.get("spec")


def _encode_continue(rv: int, start: int, snap_id: str) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start, "id": snap_id}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_continue(token: str) -> tuple[int, int, str]:
    try:
        d = json.loads(base64.urlsafe_b64decode(token.encode()))
        return int(d["rv"]), int(d["start"]), str(d["id"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise bad_request(f'invalid continue token "{token}"') from None


NAD_CRD: Obj = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "network-attachment-definitions.k8s.cni.cncf.io"},
    "spec": {
        "group": "k8s.cni.cncf.io",
        "scope": "Namespaced",
        "names": {
            "plural": "network-attachment-definitions",
            "singular": "network-attachment-definition",
            "kind": "NetworkAttachmentDefinition",
            "shortNames": ["net-attach-def"],
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "description": "A network the pod can attach to (Multus NPWG spec).",
                        "properties": {
                            "apiVersion": {"type": "string"},
                            "kind": {"type": "string"},
                            "metadata": {"type": "object"},
                            "spec": {
                                "type": "object",
                                "properties": {"config": {"type": "string"}},
                            },
                        },
                    }
                },
            }
        ],
    },
}
