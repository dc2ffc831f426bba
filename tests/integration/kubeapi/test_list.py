"""List with label and field selectors, and paging with limit/continue."""

from __future__ import annotations

import json

import aiohttp
import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiException

from sandbox.kubeapi import KubeApiServer

Pair = tuple[KubeApiServer, client.ApiClient]


@pytest.fixture
async def labelled(core: client.CoreV1Api) -> client.CoreV1Api:
    for name, labels in {
        "a": {"app": "web", "tier": "fe"},
        "b": {"app": "web", "tier": "be"},
        "c": {"app": "db"},
        "d": {},
    }.items():
        await core.create_namespaced_config_map(
            "default", {"metadata": {"name": name, "labels": labels}}
        )
    return core


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", "ab"),
        ("app==web", "ab"),
        ("app!=web", "cd"),
        ("app in (web,db)", "abc"),
        ("app notin (web)", "cd"),
        ("tier", "ab"),
        ("!tier", "cd"),
        ("app=web,tier!=fe", "b"),
        ("", "abcd"),
    ],
)
async def test_label_selectors(labelled: client.CoreV1Api, selector: str, expected: str) -> None:
    got = await labelled.list_namespaced_config_map("default", label_selector=selector)
    assert "".join(i.metadata.name for i in got.items) == expected


async def test_bad_label_selector_is_400(labelled: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as ei:
        await labelled.list_namespaced_config_map("default", label_selector="app in web)")
    assert ei.value.status == 400


async def test_field_selectors(core: client.CoreV1Api) -> None:
    spec = {"containers": [{"name": "c", "image": "i"}]}
    await core.create_namespace({"metadata": {"name": "other"}})
    await core.create_namespaced_pod(
        "default", {"metadata": {"name": "p1"}, "spec": {**spec, "nodeName": "n1"}}
    )
    await core.create_namespaced_pod(
        "default", {"metadata": {"name": "p2"}, "spec": {**spec, "nodeName": "n2"}}
    )
    await core.create_namespaced_pod(
        "other", {"metadata": {"name": "p3"}, "spec": {**spec, "nodeName": "n1"}}
    )
    await core.patch_namespaced_pod_status("p2", "default", {"status": {"phase": "Running"}})

    async def names(**kw: str) -> list[str]:
        return [p.metadata.name for p in (await core.list_pod_for_all_namespaces(**kw)).items]

    assert await names(field_selector="spec.nodeName=n1") == ["p1", "p3"]
    assert await names(field_selector="spec.nodeName!=n1") == ["p2"]
    assert await names(field_selector="status.phase=Running") == ["p2"]
    assert await names(field_selector="metadata.namespace=other") == ["p3"]
    assert await names(field_selector="metadata.name=p1,spec.nodeName=n1") == ["p1"]
    with pytest.raises(ApiException) as ei:
        await names(field_selector="spec.bogus=1")
    assert ei.value.status == 400
    assert "field label not supported: spec.bogus" in json.loads(ei.value.body)["message"]


async def test_paging_with_limit_and_continue(core: client.CoreV1Api) -> None:
    for i in range(7):
        await core.create_namespaced_config_map("default", {"metadata": {"name": f"c{i}"}})
    first = await core.list_namespaced_config_map("default", limit=3)
    assert [c.metadata.name for c in first.items] == ["c0", "c1", "c2"]
    assert first.metadata._continue and first.metadata.remaining_item_count == 4
    # a change between pages does not show: pages come from one snapshot
    await core.create_namespaced_config_map("default", {"metadata": {"name": "c3a"}})
    second = await core.list_namespaced_config_map(
        "default", limit=3, _continue=first.metadata._continue
    )
    assert [c.metadata.name for c in second.items] == ["c3", "c4", "c5"]
    assert second.metadata.resource_version == first.metadata.resource_version
    third = await core.list_namespaced_config_map(
        "default", limit=3, _continue=second.metadata._continue
    )
    assert [c.metadata.name for c in third.items] == ["c6"]
    assert not third.metadata._continue


async def test_expired_continue_is_410(core: client.CoreV1Api) -> None:
    import base64

    token = base64.urlsafe_b64encode(
        json.dumps({"rv": 1, "start": 1, "id": "gone"}).encode()
    ).decode()
    with pytest.raises(ApiException) as ei:
        await core.list_namespaced_config_map("default", limit=1, _continue=token)
    assert ei.value.status == 410


async def test_list_across_namespaces_and_cluster_scope(kapi: Pair, core: client.CoreV1Api) -> None:
    srv, _ = kapi
    await core.create_node({"metadata": {"name": "n1"}})
    async with aiohttp.ClientSession() as s:
        r = await s.get(f"{srv.url}/api/v1/namespaces/default/nodes")
        assert r.status == 404  # nodes are cluster-scoped
        r = await s.get(f"{srv.url}/api/v1/nodes")
        body = await r.json()
        assert body["kind"] == "NodeList" and [n["metadata"]["name"] for n in body["items"]] == [
            "n1"
        ]


async def test_node_field_selector_follows_binding_and_deletion(core: client.CoreV1Api) -> None:
    spec = {"containers": [{"name": "c", "image": "i"}]}
    await core.create_namespaced_pod("default", {"metadata": {"name": "u"}, "spec": spec})

    async def on(node: str) -> list[str]:
        got = await core.list_namespaced_pod("default", field_selector=f"spec.nodeName={node}")
        return [p.metadata.name for p in got.items]

    assert await on("n5") == [] and await on("") == ["u"]
    await core.create_namespaced_pod_binding(
        "u",
        "default",
        {"metadata": {"name": "u"}, "target": {"kind": "Node", "name": "n5"}},
        _preload_content=False,
    )
    assert await on("n5") == ["u"] and await on("") == []
    await core.delete_namespaced_pod("u", "default", grace_period_seconds=0)
    assert await on("n5") == []


async def test_list_resource_version_semantics(core: client.CoreV1Api) -> None:
    now = (await core.list_namespaced_config_map("default")).metadata.resource_version
    ok = await core.list_namespaced_config_map(
        "default", resource_version=now, resource_version_match="NotOlderThan"
    )
    assert ok.metadata.resource_version == now
    await core.create_namespaced_config_map("default", {"metadata": {"name": "newer"}})
    with pytest.raises(ApiException) as ei:
        await core.list_namespaced_config_map(
            "default", resource_version=now, resource_version_match="Exact"
        )
    assert ei.value.status == 410
    with pytest.raises(ApiException) as ei:
        await core.list_namespaced_config_map("default", resource_version=str(int(now) + 1000))
    assert ei.value.status == 504
    with pytest.raises(ApiException) as ei:
        await core.list_namespaced_config_map("default", resource_version_match="Exact")
    assert ei.value.status == 400


async def test_namespaced_lists_do_not_leak_across_similar_names(core: client.CoreV1Api) -> None:
    for ns in ("a", "a-b", "ab"):
        await core.create_namespace({"metadata": {"name": ns}})
        await core.create_namespaced_config_map(ns, {"metadata": {"name": f"in-{ns}"}})
    for ns in ("a", "a-b", "ab"):
        got = await core.list_namespaced_config_map(ns)
        assert [c.metadata.name for c in got.items] == [f"in-{ns}"]
