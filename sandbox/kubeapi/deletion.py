# ruff: noqa: E501  (messages quote the real API server word for word)
"""The deleting verbs: DELETE of one object or a collection, and the
namespace-specific finalize.

Deletion in Kubernetes is a protocol, not a removal: preconditions on uid
and resourceVersion; propagation (Orphan strips the dependents' owner
references before the owner goes, Foreground marks the owner with a
finalizer the garbage collector clears); a grace period for pods still
running on a node; an object with finalizers only marked, and removed by
the write that clears the last one; a namespace turned Terminating for
the namespace controller to empty. The controllers (`controllers`) pick up
the marks from the committed events; this module never calls them.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from . import kinds
from .errors import ApiError, bad_request, conflict, invalid, not_found
from .objects import Objects
from .options import DeleteOptions, now_str
from .resources import NS_GR, Obj, ResourceType
from .selectors import FieldReq, Requirement, fields_match, labels_match
from .store import Entry

# The finalizer of foreground deletion (metav1.FinalizerDeleteDependents).
FOREGROUND = "foregroundDeletion"


class Deletes:
    def __init__(self, objects: Objects) -> None:
        self.objects = objects
        self.store = objects.store

    async def delete(
        self, rt: ResourceType, ns: str, name: str, opts: DeleteOptions
    ) -> tuple[Obj, bool]:
        """Returns (object, removed now)."""
        entry = self.objects.get(rt, ns, name)
        obj = entry.obj
        meta = obj["metadata"]
        for what, want, have in (
            ("UID", opts.precondition_uid, meta.get("uid")),
            ("ResourceVersion", opts.precondition_rv, meta.get("resourceVersion")),
        ):
            if want is not None and want != have:
                why = f"Precondition failed: {what} in precondition: {want}, {what} in object meta: {have}"
                raise conflict(rt.plural, rt.group, name, why)
        if opts.grace_period is not None and opts.grace_period < 0:
            opts.grace_period = 1
        if opts.propagation not in (None, "", "Background", "Foreground", "Orphan"):
            raise bad_request(
                f'propagationPolicy: Unsupported value: "{opts.propagation}": supported values: '
                '"Background", "Foreground", "Orphan"'
            )
        if opts.propagation == "Orphan" and not opts.dry_run:
            await self.orphan(meta.get("uid", ""))
            entry = self.objects.get(rt, ns, name)
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
            return await self.objects.put(rt.gr, new, obj), False
        if rt.gr == NS_GR:
            return await self._delete_namespace(entry, opts)
        new = dict(obj)
        new_meta = new["metadata"] = dict(meta)
        grace = kinds.spec_for(rt).deletion_grace(obj, opts.grace_period)
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
                return await self.objects.remove(rt.gr, obj), True
            if meta.get("deletionTimestamp") and not meta.get("deletionGracePeriodSeconds"):
                return obj, False
            new_meta.setdefault("deletionTimestamp", now_str())
            new_meta["deletionGracePeriodSeconds"] = 0
        if opts.dry_run:
            return new, False
        if self.objects.removable(new):
            return await self.objects.remove(rt.gr, new), True
        return await self.objects.put(rt.gr, new, obj), False

    async def orphan(self, owner_uid: str) -> None:
        """propagationPolicy=Orphan: dependents lose the owner reference
        before the owner goes, so the garbage collector leaves them be."""
        for gr, ns, name in self.store.dependents(owner_uid):
            entry = self.store.get(gr, ns, name)
            if entry is None:
                continue
            new = json.loads(entry.raw)
            refs = new["metadata"].get("ownerReferences") or []
            new["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != owner_uid]
            if not new["metadata"]["ownerReferences"]:
                del new["metadata"]["ownerReferences"]
            await self.objects.put(gr, new, entry.obj)

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

    async def _delete_namespace(self, entry: Entry, opts: DeleteOptions) -> tuple[Obj, bool]:
        """Mark the namespace Terminating; the namespace controller, woken by
        this write, empties it and then removes it."""
        obj = entry.obj
        if obj["metadata"].get("deletionTimestamp"):
            return obj, False
        if opts.dry_run:
            return obj, False
        new = copy.deepcopy(obj)
        new["metadata"]["deletionTimestamp"] = now_str()
        new["metadata"]["deletionGracePeriodSeconds"] = 0
        new.setdefault("status", {})["phase"] = "Terminating"
        return await self.objects.put(NS_GR, new, obj), False

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
        # An emptied list on a terminating namespace wakes the namespace
        # controller, which removes the namespace once it is empty.
        return await self.objects.put(NS_GR, new, entry.obj)
