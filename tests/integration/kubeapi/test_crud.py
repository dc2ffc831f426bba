"""Create/get/list/update/patch/delete against the documented API behaviour."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiException

from sandbox.kubeapi import KubeApiServer

Pair = tuple[KubeApiServer, client.ApiClient]


def pod(name: str, node: str = "", labels: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": spec}


def status_of(e: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(e.body)
    return body


async def test_default_namespaces_exist(core: client.CoreV1Api) -> None:
    names = {n.metadata.name for n in (await core.list_namespace()).items}
    assert {"default", "kube-system"} <= names
    sa = await core.read_namespaced_service_account("default", "default")
    assert sa.metadata.name == "default"


async def test_create_sets_server_metadata(core: client.CoreV1Api) -> None:
    p = await core.create_namespaced_pod("default", pod("a"))
    assert p.metadata.uid and p.metadata.creation_timestamp
    assert p.metadata.generation == 1
    assert int(p.metadata.resource_version) > 0
    assert p.status.phase == "Pending"
    got = await core.read_namespaced_pod("a", "default")
    assert got.metadata.uid == p.metadata.uid


async def test_resource_version_is_cluster_wide_and_increasing(core: client.CoreV1Api) -> None:
    rvs = []
    for i in range(3):
        cm = await core.create_namespaced_config_map("default", {"metadata": {"name": f"c{i}"}})
        rvs.append(int(cm.metadata.resource_version))
        p = await core.create_namespaced_pod("default", pod(f"p{i}"))
        rvs.append(int(p.metadata.resource_version))
    assert rvs == sorted(rvs) and len(set(rvs)) == len(rvs)


async def test_generate_name(core: client.CoreV1Api) -> None:
    p = await core.create_namespaced_pod(
        "default", {"metadata": {"generateName": "web-"}, "spec": pod("x")["spec"]}
    )
    assert p.metadata.name.startswith("web-") and len(p.metadata.name) == len("web-") + 5
    assert p.metadata.generate_name == "web-"


async def test_duplicate_create_is_409_already_exists(core: client.CoreV1Api) -> None:
    await core.create_namespaced_pod("default", pod("dup"))
    with pytest.raises(ApiException) as ei:
        await core.create_namespaced_pod("default", pod("dup"))
    assert ei.value.status == 409
    st = status_of(ei.value)
    assert st["kind"] == "Status" and st["reason"] == "AlreadyExists"
    assert st["details"]["name"] == "dup"


async def test_missing_namespace_is_404(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as ei:
        await core.create_namespaced_pod("nope", pod("a"))
    assert ei.value.status == 404
    assert status_of(ei.value)["message"] == 'namespaces "nope" not found'


async def test_namespace_mismatch_is_400(core: client.CoreV1Api) -> None:
    body = pod("a")
    body["metadata"]["namespace"] = "kube-system"
    with pytest.raises(ApiException) as ei:
        await core.create_namespaced_pod("default", body)
    assert ei.value.status == 400
    assert status_of(ei.value)["reason"] == "BadRequest"


async def test_invalid_name_is_422(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as ei:
        await core.create_namespaced_config_map("default", {"metadata": {"name": "Bad_Name"}})
    assert ei.value.status == 422
    st = status_of(ei.value)
    assert st["reason"] == "Invalid"
    assert st["details"]["causes"][0]["field"] == "metadata.name"


async def test_get_missing_is_404_not_found(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as ei:
        await core.read_namespaced_pod("ghost", "default")
    assert ei.value.status == 404
    st = status_of(ei.value)
    assert st["reason"] == "NotFound" and st["message"] == 'pods "ghost" not found'


async def test_update_with_stale_resource_version_is_409(core: client.CoreV1Api) -> None:
    cm = await core.create_namespaced_config_map(
        "default", {"metadata": {"name": "cm"}, "data": {"a": "1"}}
    )
    cm.data = {"a": "2"}
    updated = await core.replace_namespaced_config_map("cm", "default", cm)
    assert updated.data == {"a": "2"}
    assert int(updated.metadata.resource_version) > int(cm.metadata.resource_version)
    cm.data = {"a": "3"}  # still carries the old resourceVersion
    with pytest.raises(ApiException) as ei:
        await core.replace_namespaced_config_map("cm", "default", cm)
    assert ei.value.status == 409
    assert status_of(ei.value)["reason"] == "Conflict"


async def test_generation_bumps_on_spec_change_only(core: client.CoreV1Api) -> None:
    await core.create_node({"metadata": {"name": "n1"}, "spec": {}})
    n = await core.patch_node("n1", {"metadata": {"labels": {"a": "b"}}})
    assert n.metadata.generation == 1
    n = await core.patch_node("n1", {"spec": {"unschedulable": True}})
    assert n.metadata.generation == 2
    n = await core.patch_node_status(
        "n1", {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    )
    assert n.metadata.generation == 2


async def test_noop_update_keeps_resource_version(core: client.CoreV1Api) -> None:
    cm = await core.create_namespaced_config_map("default", {"metadata": {"name": "same"}})
    again = await core.patch_namespaced_config_map("same", "default", {"metadata": {}})
    assert again.metadata.resource_version == cm.metadata.resource_version


async def test_status_subresource_split(core: client.CoreV1Api) -> None:
    await core.create_namespaced_pod("default", pod("s"))
    # A write to the main resource ignores status...
    p = await core.patch_namespaced_pod("s", "default", {"status": {"phase": "Running"}})
    assert p.status.phase == "Pending"
    # ...and a write to /status changes only status.
    p = await core.patch_namespaced_pod_status(
        "s",
        "default",
        {"metadata": {"labels": {"x": "y"}}, "status": {"phase": "Running", "podIP": "10.1.0.4"}},
    )
    assert p.status.phase == "Running" and p.status.pod_ip == "10.1.0.4"
    assert not (p.metadata.labels or {}).get("x")


async def test_patch_types(kapi: Pair, core: client.CoreV1Api) -> None:
    await core.create_namespaced_pod("default", pod("p", labels={"a": "1"}))
    # strategic merge (the client's default for dicts): finalizers merge as a set
    await core.patch_namespaced_pod("p", "default", {"metadata": {"finalizers": ["x/one"]}})
    p = await core.patch_namespaced_pod("p", "default", {"metadata": {"finalizers": ["x/two"]}})
    assert p.metadata.finalizers == ["x/one", "x/two"]
    # merge patch replaces lists and deletes keys set to null
    p = await core.patch_namespaced_pod(
        "p",
        "default",
        {"metadata": {"finalizers": ["x/two"], "labels": {"a": None, "b": "2"}}},
        _content_type="application/merge-patch+json",
    )
    assert p.metadata.finalizers == ["x/two"] and p.metadata.labels == {"b": "2"}
    # json patch
    p = await core.patch_namespaced_pod(
        "p",
        "default",
        [
            {"op": "add", "path": "/metadata/annotations", "value": {"k": "v"}},
            {"op": "remove", "path": "/metadata/finalizers/0"},
        ],
    )
    assert p.metadata.annotations == {"k": "v"} and not p.metadata.finalizers
    # a failing json patch test op changes nothing
    with pytest.raises(ApiException) as ei:
        await core.patch_namespaced_pod(
            "p", "default", [{"op": "test", "path": "/metadata/labels/b", "value": "9"}]
        )
    assert ei.value.status == 422


async def test_strategic_merge_containers_by_name(core: client.CoreV1Api) -> None:
    body = pod("m")
    body["spec"]["containers"].append({"name": "d", "image": "old"})
    await core.create_namespaced_pod("default", body)
    p = await core.patch_namespaced_pod(
        "m", "default", {"spec": {"containers": [{"name": "d", "image": "new"}]}}
    )
    images = {c.name: c.image for c in p.spec.containers}
    assert images == {"c": "busybox", "d": "new"}


async def test_unsupported_patch_content_type_is_415(kapi: Pair) -> None:
    srv, _ = kapi
    import aiohttp

    async with aiohttp.ClientSession() as s:
        await s.post(
            f"{srv.url}/api/v1/namespaces/default/configmaps", json={"metadata": {"name": "x"}}
        )
        r = await s.patch(
            f"{srv.url}/api/v1/namespaces/default/configmaps/x",
            data=b"{}",
            headers={"Content-Type": "text/plain"},
        )
        assert r.status == 415
        assert (await r.json())["reason"] == "UnsupportedMediaType"


async def test_delete_and_deletecollection(core: client.CoreV1Api) -> None:
    for i in range(4):
        await core.create_namespaced_config_map(
            "default", {"metadata": {"name": f"d{i}", "labels": {"grp": "a" if i < 3 else "b"}}}
        )
    st = await core.delete_namespaced_config_map("d3", "default")
    assert st.status == "Success"
    await core.delete_collection_namespaced_config_map("default", label_selector="grp=a")
    left = await core.list_namespaced_config_map("default")
    assert [c.metadata.name for c in left.items] == []
    with pytest.raises(ApiException) as ei:
        await core.delete_namespaced_config_map("d3", "default")
    assert ei.value.status == 404


async def test_finalizers_hold_deletion(core: client.CoreV1Api) -> None:
    await core.create_namespaced_config_map(
        "default", {"metadata": {"name": "f", "finalizers": ["kovn.io/test"]}}
    )
    await core.delete_namespaced_config_map("f", "default")
    cm = await core.read_namespaced_config_map("f", "default")
    assert cm.metadata.deletion_timestamp is not None
    with pytest.raises(ApiException) as ei:  # no new finalizers while deleting
        await core.patch_namespaced_config_map(
            "f", "default", {"metadata": {"finalizers": ["kovn.io/test", "kovn.io/more"]}}
        )
    assert ei.value.status == 422
    await core.patch_namespaced_config_map(
        "f",
        "default",
        {"metadata": {"finalizers": None}},
        _content_type="application/merge-patch+json",
    )
    with pytest.raises(ApiException) as ei:
        await core.read_namespaced_config_map("f", "default")
    assert ei.value.status == 404


async def test_bound_pod_graceful_deletion(core: client.CoreV1Api) -> None:
    await core.create_namespaced_pod("default", pod("bound", node="n1"))
    await core.create_namespaced_pod("default", pod("unbound"))
    p = await core.delete_namespaced_pod("bound", "default")
    assert p.metadata.deletion_timestamp is not None
    assert p.metadata.deletion_grace_period_seconds == 30
    still = await core.read_namespaced_pod("bound", "default")
    assert still.metadata.deletion_timestamp is not None
    # the kubelet confirms with gracePeriodSeconds=0
    await core.delete_namespaced_pod("bound", "default", grace_period_seconds=0)
    with pytest.raises(ApiException):
        await core.read_namespaced_pod("bound", "default")
    # an unbound pod goes at once
    await core.delete_namespaced_pod("unbound", "default")
    with pytest.raises(ApiException) as ei:
        await core.read_namespaced_pod("unbound", "default")
    assert ei.value.status == 404


async def test_delete_precondition_uid(core: client.CoreV1Api) -> None:
    await core.create_namespaced_config_map("default", {"metadata": {"name": "pc"}})
    with pytest.raises(ApiException) as ei:
        await core.delete_namespaced_config_map(
            "pc", "default", body={"preconditions": {"uid": "not-the-uid"}}
        )
    assert ei.value.status == 409


async def test_namespace_deletion_removes_contents(core: client.CoreV1Api) -> None:
    await core.create_namespace({"metadata": {"name": "gone"}})
    await core.create_namespaced_config_map("gone", {"metadata": {"name": "c"}})
    await core.create_namespaced_config_map(
        "gone", {"metadata": {"name": "held", "finalizers": ["kovn.io/hold"]}}
    )
    await core.delete_namespace("gone")
    ns = await core.read_namespace("gone")
    assert ns.status.phase == "Terminating" and ns.metadata.deletion_timestamp
    with pytest.raises(ApiException) as ei:  # no new content while terminating
        await core.create_namespaced_config_map("gone", {"metadata": {"name": "new"}})
    assert ei.value.status == 403
    await core.patch_namespaced_config_map(
        "held",
        "gone",
        {"metadata": {"finalizers": None}},
        _content_type="application/merge-patch+json",
    )
    from kubernetes_asyncio import watch

    w = watch.Watch()
    async for ev in w.stream(
        core.list_namespace,
        field_selector="metadata.name=gone",
        resource_version=ns.metadata.resource_version,
        timeout_seconds=10,
    ):
        if ev["type"] == "DELETED":
            break
    else:
        pytest.fail("namespace was not removed")
    with pytest.raises(ApiException):
        await core.read_namespaced_config_map("c", "gone")


async def test_service_gets_cluster_ip(core: client.CoreV1Api) -> None:
    s1 = await core.create_namespaced_service(
        "default", {"metadata": {"name": "s1"}, "spec": {"ports": [{"port": 80}]}}
    )
    s2 = await core.create_namespaced_service(
        "default",
        {
            "metadata": {"name": "s2"},
            "spec": {"type": "NodePort", "ports": [{"port": 53, "protocol": "UDP"}]},
        },
    )
    assert s1.spec.cluster_ip and s1.spec.cluster_ip != s2.spec.cluster_ip
    assert s1.spec.ports[0].target_port == 80
    assert 30000 <= s2.spec.ports[0].node_port <= 32767
    with pytest.raises(ApiException) as ei:
        await core.create_namespaced_service(
            "default",
            {
                "metadata": {"name": "s3"},
                "spec": {"clusterIP": s1.spec.cluster_ip, "ports": [{"port": 1}]},
            },
        )
    assert ei.value.status == 422


async def test_pod_spec_is_immutable_except_images(core: client.CoreV1Api) -> None:
    await core.create_namespaced_pod("default", pod("imm"))
    p = await core.patch_namespaced_pod(
        "imm", "default", {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}
    )
    assert p.spec.containers[0].image == "busybox:2"
    for change in ({"nodeName": "n9"}, {"restartPolicy": "Never"}):
        with pytest.raises(ApiException) as ei:
            await core.patch_namespaced_pod("imm", "default", {"spec": change})
        assert ei.value.status == 422


async def test_patch_with_resource_version_is_a_precondition(core: client.CoreV1Api) -> None:
    cm = await core.create_namespaced_config_map("default", {"metadata": {"name": "pre"}})
    await core.patch_namespaced_config_map("pre", "default", {"data": {"a": "1"}})
    with pytest.raises(ApiException) as ei:
        await core.patch_namespaced_config_map(
            "pre",
            "default",
            {"metadata": {"resourceVersion": cm.metadata.resource_version}, "data": {"a": "2"}},
            _content_type="application/merge-patch+json",
        )
    assert ei.value.status == 409


async def test_immutable_metadata_survives_updates(core: client.CoreV1Api) -> None:
    cm = await core.create_namespaced_config_map("default", {"metadata": {"name": "imm"}})
    got = await core.patch_namespaced_config_map(
        "imm",
        "default",
        {"metadata": {"uid": "forged", "creationTimestamp": "2000-01-01T00:00:00Z"}},
        _content_type="application/merge-patch+json",
    )
    assert got.metadata.uid == cm.metadata.uid
    assert got.metadata.creation_timestamp == cm.metadata.creation_timestamp


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"ports": [{"port": 0}]}, "spec.ports[0].port"),
        ({"ports": [{"port": 80, "name": "a"}, {"port": 80, "name": "b"}]}, "spec.ports[1]"),
        ({"ports": [{"port": 80}, {"port": 81}]}, "spec.ports[0].name"),
        ({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}, "spec.ports[0].nodePort"),
        ({"ports": [{"port": 80, "protocol": "ICMP"}]}, "spec.ports[0].protocol"),
        ({"type": "Weird", "ports": [{"port": 80}]}, "spec.type"),
    ],
)
async def test_invalid_service_is_422(
    core: client.CoreV1Api, spec: dict[str, Any], field: str
) -> None:
    with pytest.raises(ApiException) as ei:
        await core.create_namespaced_service("default", {"metadata": {"name": "bad"}, "spec": spec})
    assert ei.value.status == 422
    assert status_of(ei.value)["details"]["causes"][0]["field"] == field


async def test_namespace_waits_for_external_spec_finalizer(
    kapi: Any, core: client.CoreV1Api
) -> None:
    import aiohttp

    srv, _ = kapi
    await core.create_namespace({"metadata": {"name": "fin"}})
    url = f"{srv.url}/api/v1/namespaces/fin/finalize"
    body = {"metadata": {"name": "fin"}, "spec": {"finalizers": ["kubernetes", "kovn.io/net"]}}
    async with aiohttp.ClientSession() as s, s.put(url, json=body) as r:
        assert r.status == 200
    ns = await core.read_namespace("fin")
    assert ns.spec.finalizers == ["kubernetes", "kovn.io/net"]
    await core.delete_namespace("fin")
    from kubernetes_asyncio import watch

    w = watch.Watch()
    async for ev in w.stream(  # the controller takes its own finalizer only
        core.list_namespace,
        field_selector="metadata.name=fin",
        resource_version=ns.metadata.resource_version,
        timeout_seconds=10,
    ):
        if ev["object"].spec.finalizers == ["kovn.io/net"]:
            w.stop()
    assert (await core.read_namespace("fin")).status.phase == "Terminating"
    body["spec"]["finalizers"] = []
    async with aiohttp.ClientSession() as s, s.put(url, json=body) as r:
        assert r.status == 200
    async for ev in w.stream(
        core.list_namespace,
        field_selector="metadata.name=fin",
        resource_version=ns.metadata.resource_version,
        timeout_seconds=10,
    ):
        if ev["type"] == "DELETED":
            w.stop()
    with pytest.raises(ApiException):
        await core.read_namespace("fin")
