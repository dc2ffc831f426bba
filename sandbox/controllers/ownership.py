"""Adoption and release of dependents by controller reference.

A workload controller owns the objects its selector matches, as the
Kubernetes garbage-collection docs describe: an orphan (no controller
reference) that matches is adopted, one it owns that no longer matches is
released, and one another controller owns is left alone. Neither happens
while the owner is being deleted. The patch carries the dependent's
resourceVersion, so a concurrent change makes it fail (409) and the
reconcile goes again on fresh state, instead of clobbering another
controller's claim.
"""

from __future__ import annotations

from collections.abc import Callable

from sandbox.controllers.base import Informer, Obj
from sandbox.controllers.podutil import controller_ref, owner_ref
from services.common.kube import KubeClient, KubeError


async def claim(
    kube: KubeClient,
    cache: Informer,
    path_of: Callable[[Obj], str],
    owner: Obj,
    kind: str,
    api_version: str,
    candidates: list[Obj],
    matches: Callable[[Obj], bool],
) -> list[Obj]:
    """The candidates `owner` controls after adopting and releasing."""
    uid = owner["metadata"]["uid"]
    deleting = bool(owner["metadata"].get("deletionTimestamp"))
    out: list[Obj] = []
    for obj in candidates:
        ref = controller_ref(obj)
        md = obj["metadata"]
        refs = [r for r in md.get("ownerReferences") or [] if isinstance(r, dict)]
        if ref is not None and ref.get("uid") == uid:
            if matches(obj) or deleting:
                out.append(obj)
                continue
            new_refs = [r for r in refs if r.get("uid") != uid]
        elif ref is None and matches(obj) and not deleting and not md.get("deletionTimestamp"):
            new_refs = [*refs, owner_ref(owner, kind, api_version)]
        else:
            continue
        patch = {
            "metadata": {
                "ownerReferences": new_refs or None,
                "resourceVersion": md.get("resourceVersion"),
            }
        }
        try:
            cache.wrote(await kube.merge_patch(path_of(obj), patch))
        except KubeError as e:
            if e.status == 404:
                continue
            raise
        if ref is None:
            out.append(cache.get(md.get("namespace") or "", md["name"]) or obj)
    return out
