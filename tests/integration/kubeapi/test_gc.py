"""Garbage collection by ownerReferences (background and orphan propagation)."""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client import ApiException


def owned(name: str, *owners: Any) -> dict[str, Any]:
    refs = [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": o.metadata.name, "uid": o.metadata.uid}
        for o in owners
    ]
    return {"metadata": {"name": name, "ownerReferences": refs}}


async def _wait_deleted(core: client.CoreV1Api, name: str, rv: str) -> None:
    w = watch.Watch()
    async for ev in w.stream(
        core.list_namespaced_config_map,
        "default",
        resource_version=rv,
        field_selector=f"metadata.name={name}",
        timeout_seconds=10,
    ):
        if ev["type"] == "DELETED":
            w.stop()
            return
    raise AssertionError(f"{name} was not collected")


async def test_dependents_go_with_their_owner(core: client.CoreV1Api) -> None:
    owner = await core.create_namespaced_config_map("default", {"metadata": {"name": "owner"}})
    dep = await core.create_namespaced_config_map("default", owned("dep", owner))
    await core.delete_namespaced_config_map("owner", "default")
    await _wait_deleted(core, "dep", dep.metadata.resource_version)


async def test_dependent_with_a_living_owner_stays(core: client.CoreV1Api) -> None:
    a = await core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    b = await core.create_namespaced_config_map("default", {"metadata": {"name": "b"}})
    await core.create_namespaced_config_map("default", owned("shared", a, b))
    marker = await core.create_namespaced_config_map("default", owned("marker", a))
    await core.delete_namespaced_config_map("a", "default")
    # marker (owned by a alone) is collected; by then shared was considered too
    await _wait_deleted(core, "marker", marker.metadata.resource_version)
    shared = await core.read_namespaced_config_map("shared", "default")
    assert shared.metadata.name == "shared"


async def test_orphan_propagation_keeps_dependents(core: client.CoreV1Api) -> None:
    owner = await core.create_namespaced_config_map("default", {"metadata": {"name": "o"}})
    await core.create_namespaced_config_map("default", owned("kept", owner))
    await core.delete_namespaced_config_map("o", "default", propagation_policy="Orphan")
    kept = await core.read_namespaced_config_map("kept", "default")
    assert not kept.metadata.owner_references
    try:
        await core.delete_namespaced_config_map("kept", "default", propagation_policy="Sideways")
    except ApiException as e:
        assert e.status == 400
    else:
        raise AssertionError("bad propagationPolicy accepted")


async def test_foreground_owner_waits_for_its_dependents(core: client.CoreV1Api) -> None:
    owner = await core.create_namespaced_config_map("default", {"metadata": {"name": "fg"}})
    await core.create_namespaced_config_map(
        "default",
        {
            **owned("held", owner),
            "metadata": {**owned("held", owner)["metadata"], "finalizers": ["kovn.io/hold"]},
        },
    )
    await core.delete_namespaced_config_map("fg", "default", propagation_policy="Foreground")
    o = await core.read_namespaced_config_map("fg", "default")
    assert o.metadata.deletion_timestamp and "foregroundDeletion" in o.metadata.finalizers
    held = await core.read_namespaced_config_map("held", "default")
    assert held.metadata.deletion_timestamp  # being deleted, waits on its own finalizer
    await core.patch_namespaced_config_map(
        "held",
        "default",
        {"metadata": {"finalizers": None}},
        _content_type="application/merge-patch+json",
    )
    await _wait_deleted(core, "fg", o.metadata.resource_version)
