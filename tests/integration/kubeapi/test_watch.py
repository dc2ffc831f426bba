"""Watch semantics as Kubernetes documents them, through kubernetes-asyncio."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client import ApiException

from sandbox.kubeapi import KubeApiServer

Pair = tuple[KubeApiServer, client.ApiClient]


def cm(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}}}


async def _events(core: client.CoreV1Api, n: int, **kw: Any) -> list[tuple[str, str]]:
    """The first n (type, name) events of a configmap watch."""
    out: list[tuple[str, str]] = []
    w = watch.Watch()
    async for ev in w.stream(core.list_namespaced_config_map, "default", timeout_seconds=10, **kw):
        out.append((ev["type"], ev["object"].metadata.name))
        if len(out) == n:
            w.stop()
    return out


async def test_watch_without_version_lists_then_follows(core: client.CoreV1Api) -> None:
    await core.create_namespaced_config_map("default", cm("before"))

    async def later() -> None:
        await core.create_namespaced_config_map("default", cm("after"))
        await core.patch_namespaced_config_map("after", "default", {"data": {"k": "v"}})
        await core.delete_namespaced_config_map("after", "default")

    w = watch.Watch()
    seen: list[tuple[str, str]] = []
    task = None
    async for ev in w.stream(core.list_namespaced_config_map, "default", timeout_seconds=10):
        seen.append((ev["type"], ev["object"].metadata.name))
        if task is None:
            task = asyncio.create_task(later())
        if len(seen) == 4:
            w.stop()
    assert task is not None
    await task
    assert seen == [
        ("ADDED", "before"),
        ("ADDED", "after"),
        ("MODIFIED", "after"),
        ("DELETED", "after"),
    ]


async def test_watch_from_resource_version_delivers_only_later(core: client.CoreV1Api) -> None:
    await core.create_namespaced_config_map("default", cm("old"))
    rv = (await core.list_namespaced_config_map("default")).metadata.resource_version
    await core.create_namespaced_config_map("default", cm("new"))
    await core.create_namespaced_pod(
        "default",
        {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
    )
    await core.create_namespaced_config_map("default", cm("newer"))
    seen = await _events(core, 2, resource_version=rv)
    assert seen == [("ADDED", "new"), ("ADDED", "newer")]


async def test_deleted_event_carries_new_resource_version(core: client.CoreV1Api) -> None:
    c = await core.create_namespaced_config_map("default", cm("x"))
    await core.delete_namespaced_config_map("x", "default")
    w = watch.Watch()
    async for ev in w.stream(
        core.list_namespaced_config_map,
        "default",
        resource_version=c.metadata.resource_version,
        timeout_seconds=5,
    ):
        assert ev["type"] == "DELETED"
        assert int(ev["object"].metadata.resource_version) > int(c.metadata.resource_version)
        w.stop()


async def test_too_old_resource_version_is_410_gone(tmp_path: Any) -> None:
    from sandbox.kubeapi.testing import running_kubeapi

    async with running_kubeapi(tmp_path, history_size=5) as (srv, api_client):
        core = client.CoreV1Api(api_client)
        first = await core.create_namespaced_config_map("default", cm("c0"))
        for i in range(1, 30):
            await core.create_namespaced_config_map("default", cm(f"c{i}"))
        async with aiohttp.ClientSession() as s:
            url = f"{srv.url}/api/v1/namespaces/default/configmaps"
            params = {"watch": "true", "resourceVersion": first.metadata.resource_version}
            async with s.get(url, params=params) as r:
                assert r.status == 200
                ev = json.loads(await r.content.readline())
        assert ev["type"] == "ERROR"
        assert ev["object"]["kind"] == "Status" and ev["object"]["code"] == 410
        assert ev["object"]["reason"] == "Expired"
        # the client library surfaces it as an ApiException(410)
        w = watch.Watch()
        try:
            async for _ in w.stream(
                core.list_namespaced_config_map,
                "default",
                resource_version=first.metadata.resource_version,
                timeout_seconds=2,
            ):
                pass
        except ApiException as e:
            assert e.status == 410
        else:
            raise AssertionError("expected 410")


async def test_timeout_seconds_ends_the_stream(kapi: Pair) -> None:
    srv, _ = kapi
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    async with aiohttp.ClientSession() as s:
        url = f"{srv.url}/api/v1/namespaces/default/configmaps"
        async with s.get(url, params={"watch": "1", "timeoutSeconds": "1"}) as r:
            body = await r.read()
    elapsed = loop.time() - t0
    assert body == b""
    assert 0.9 <= elapsed < 5


async def test_bookmarks(kapi: Pair, core: client.CoreV1Api) -> None:
    srv, _ = kapi
    c = await core.create_namespaced_config_map("default", cm("b"))
    async with aiohttp.ClientSession() as s:
        url = f"{srv.url}/api/v1/namespaces/default/configmaps"
        params = {
            "watch": "true",
            "allowWatchBookmarks": "true",
            "resourceVersion": c.metadata.resource_version,
            "timeoutSeconds": "5",
        }
        async with s.get(url, params=params) as r:
            ev = json.loads(await r.content.readline())
    assert ev["type"] == "BOOKMARK"
    assert ev["object"]["kind"] == "ConfigMap"
    assert int(ev["object"]["metadata"]["resourceVersion"]) >= int(c.metadata.resource_version)


async def test_selector_watch_sends_deleted_when_object_stops_matching(
    core: client.CoreV1Api,
) -> None:
    c = await core.create_namespaced_config_map("default", cm("sel", {"team": "a"}))
    await core.patch_namespaced_config_map(
        "sel", "default", {"metadata": {"labels": {"team": "b"}}}
    )
    await core.patch_namespaced_config_map(
        "sel", "default", {"metadata": {"labels": {"team": "a"}}}
    )
    await core.create_namespaced_config_map("default", cm("other", {"team": "b"}))
    seen = await _events(
        core, 2, resource_version=c.metadata.resource_version, label_selector="team=a"
    )
    assert seen == [("DELETED", "sel"), ("ADDED", "sel")]


async def test_watch_field_selector_and_namespace(core: client.CoreV1Api) -> None:
    await core.create_namespace({"metadata": {"name": "other"}})
    spec = {"containers": [{"name": "c", "image": "i"}]}
    rv = (await core.list_namespaced_pod("default")).metadata.resource_version
    await core.create_namespaced_pod(
        "other", {"metadata": {"name": "elsewhere"}, "spec": {**spec, "nodeName": "n1"}}
    )
    await core.create_namespaced_pod(
        "default", {"metadata": {"name": "p2"}, "spec": {**spec, "nodeName": "n2"}}
    )
    await core.create_namespaced_pod(
        "default", {"metadata": {"name": "p1"}, "spec": {**spec, "nodeName": "n1"}}
    )
    w = watch.Watch()
    names = []
    async for ev in w.stream(
        core.list_namespaced_pod,
        "default",
        resource_version=rv,
        field_selector="spec.nodeName=n1",
        timeout_seconds=5,
    ):
        names.append(ev["object"].metadata.name)
        w.stop()
    assert names == ["p1"]


async def test_legacy_watch_path(kapi: Pair, core: client.CoreV1Api) -> None:
    srv, _ = kapi
    await core.create_namespaced_config_map("default", cm("legacy"))
    async with aiohttp.ClientSession() as s:
        url = f"{srv.url}/api/v1/watch/namespaces/default/configmaps/legacy"
        async with s.get(url, params={"timeoutSeconds": "2"}) as r:
            ev = json.loads(await r.content.readline())
    assert ev["type"] == "ADDED" and ev["object"]["metadata"]["name"] == "legacy"
    async with aiohttp.ClientSession() as s:  # the same through ?watch on the object
        url = f"{srv.url}/api/v1/namespaces/default/configmaps/legacy"
        async with s.get(url, params={"watch": "true", "timeoutSeconds": "2"}) as r:
            ev = json.loads(await r.content.readline())
    assert ev["type"] == "ADDED" and ev["object"]["metadata"]["name"] == "legacy"


async def test_watch_delivery_is_prompt(core: client.CoreV1Api) -> None:
    """A change reaches an open watch within a few milliseconds."""
    loop = asyncio.get_running_loop()
    rv = (await core.list_namespaced_config_map("default")).metadata.resource_version
    connected, got = asyncio.Event(), asyncio.Event()
    stamps: dict[str, float] = {}

    async def watcher() -> None:
        w = watch.Watch()
        async for ev in w.stream(
            core.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=10
        ):
            if ev["object"].metadata.name == "probe":
                connected.set()
            else:
                stamps["seen"] = loop.time()
                got.set()
                w.stop()

    task = asyncio.create_task(watcher())
    await core.create_namespaced_config_map("default", cm("probe"))
    await asyncio.wait_for(connected.wait(), 5)
    stamps["sent"] = loop.time()
    await core.create_namespaced_config_map("default", cm("fast"))
    await asyncio.wait_for(got.wait(), 5)
    await task
    assert stamps["seen"] - stamps["sent"] < 0.1


async def test_concurrent_writers_watch_sees_every_event_in_version_order(
    core: client.CoreV1Api,
) -> None:
    rv = (await core.list_namespaced_config_map("default")).metadata.resource_version
    n = 64
    await asyncio.gather(
        *(core.create_namespaced_config_map("default", cm(f"c{i}")) for i in range(n))
    )
    versions: list[int] = []
    names: set[str] = set()
    w = watch.Watch()
    async for ev in w.stream(
        core.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=10
    ):
        versions.append(int(ev["object"].metadata.resource_version))
        names.add(ev["object"].metadata.name)
        if len(versions) == n:
            w.stop()
    assert names == {f"c{i}" for i in range(n)}
    assert versions == sorted(versions) and len(set(versions)) == n


async def test_concurrent_conditional_updates_one_winner(core: client.CoreV1Api) -> None:
    base = await core.create_namespaced_config_map(
        "default", {"metadata": {"name": "race"}, "data": {"v": "0"}}
    )

    async def attempt(i: int) -> bool:
        body = {
            "metadata": {"name": "race", "resourceVersion": base.metadata.resource_version},
            "data": {"v": str(i + 1)},  # never equal to the base: no no-op update
        }
        try:
            await core.replace_namespaced_config_map("race", "default", body)
            return True
        except ApiException as e:
            assert e.status == 409
            return False

    results = await asyncio.gather(*(attempt(i) for i in range(16)))
    assert sum(results) == 1


async def test_node_scoped_watch_sees_binding_as_added_and_deletion(core: client.CoreV1Api) -> None:
    spec = {"containers": [{"name": "c", "image": "i"}]}
    rv = (await core.list_namespaced_pod("default")).metadata.resource_version
    await core.create_namespaced_pod("default", {"metadata": {"name": "later"}, "spec": spec})
    await core.create_namespaced_pod_binding(
        "later",
        "default",
        {"metadata": {"name": "later"}, "target": {"kind": "Node", "name": "n8"}},
        _preload_content=False,
    )
    await core.delete_namespaced_pod("later", "default", grace_period_seconds=0)
    seen = []
    w = watch.Watch()
    async for ev in w.stream(
        core.list_pod_for_all_namespaces,
        resource_version=rv,
        field_selector="spec.nodeName=n8",
        timeout_seconds=5,
    ):
        seen.append((ev["type"], ev["object"].metadata.name))
        if len(seen) == 2:
            w.stop()
    assert seen == [("ADDED", "later"), ("DELETED", "later")]


async def test_watch_from_a_version_never_issued_is_410(kapi: Pair) -> None:
    """(After a crash lost uncommitted writes, or a state reset.) Clients relist on 410."""
    srv, _ = kapi
    async with aiohttp.ClientSession() as s:
        url = f"{srv.url}/api/v1/namespaces/default/configmaps"
        async with s.get(url, params={"watch": "1", "resourceVersion": "999999"}) as r:
            ev = json.loads(await r.content.readline())
    assert ev["type"] == "ERROR" and ev["object"]["code"] == 410
