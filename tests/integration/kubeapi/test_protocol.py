"""Protocol details clients rely on: discovery, Tables, apply, dry run,
binding, initial-events watches, metrics."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiException

from sandbox.kubeapi import KubeApiServer

Pair = tuple[KubeApiServer, client.ApiClient]
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


async def _get(srv: KubeApiServer, path: str, **kw: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.get(srv.url + path, **kw) as r:
        return r.status, json.loads(await r.read() or b"null")


async def test_discovery_documents(kapi: Pair) -> None:
    srv, api_client = kapi
    code, ver = await _get(srv, "/version")
    assert code == 200 and ver["gitVersion"].startswith("v1.")
    code, groups = await _get(srv, "/apis")
    names = {g["name"] for g in groups["groups"]}
    assert {
        "discovery.k8s.io",
        "networking.k8s.io",
        "coordination.k8s.io",
        "apiextensions.k8s.io",
        "k8s.cni.cncf.io",
    } <= names
    core = await client.CoreApi(api_client).get_api_versions()
    assert core.versions == ["v1"]
    res = await client.CoreV1Api(api_client).get_api_resources()
    assert res.group_version == "v1"
    by = {r.name: r for r in res.resources}
    assert by["pods"].namespaced and not by["nodes"].namespaced
    assert "pods/status" in by and "watch" in by["pods"].verbs
    code, _ = await _get(srv, "/apis/nope.io/v1")
    assert code == 404


async def test_pod_table_has_real_columns(kapi: Pair, core: client.CoreV1Api) -> None:
    srv, _ = kapi
    await core.create_namespaced_pod(
        "default",
        {
            "metadata": {"name": "t"},
            "spec": {"nodeName": "n7", "containers": [{"name": "c", "image": "i"}]},
        },
    )
    await core.patch_namespaced_pod_status("t", "default", {"status": {"podIP": "10.9.9.9"}})
    code, table = await _get(srv, "/api/v1/namespaces/default/pods", headers={"Accept": TABLE})
    assert code == 200 and table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    cols = [c["name"] for c in table["columnDefinitions"]]
    assert cols[:7] == ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node"]
    cells = table["rows"][0]["cells"]
    assert cells[0] == "t" and cells[5] == "10.9.9.9" and cells[6] == "n7"
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    code, sa_table = await _get(
        srv, "/api/v1/namespaces/default/serviceaccounts", headers={"Accept": TABLE}
    )
    assert [c["name"] for c in sa_table["columnDefinitions"]] == ["Name", "Age"]
    await core.create_namespaced_endpoints(
        "default",
        {
            "metadata": {"name": "svc"},
            "subsets": [{"addresses": [{"ip": "10.1.0.5"}], "ports": [{"port": 80}]}],
        },
    )
    code, ep_table = await _get(
        srv, "/api/v1/namespaces/default/endpoints", headers={"Accept": TABLE}
    )
    assert ep_table["rows"][0]["cells"][:2] == ["svc", "10.1.0.5:80"]


async def test_server_side_apply_creates_then_merges(kapi: Pair, core: client.CoreV1Api) -> None:
    srv, _ = kapi
    url = f"{srv.url}/api/v1/namespaces/default/configmaps/applied"
    hdr = {"Content-Type": "application/apply-patch+yaml"}
    doc = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\ndata:\n  a: '1'\n"
    async with aiohttp.ClientSession() as s:
        async with s.patch(url, data=doc, headers=hdr) as r:
            assert r.status == 400  # fieldManager is required
        async with s.patch(url, data=doc, headers=hdr, params={"fieldManager": "t"}) as r:
            assert r.status in (200, 201)
        async with s.patch(
            url, data=doc.replace("'1'", "'2'"), headers=hdr, params={"fieldManager": "t"}
        ) as r:
            assert r.status == 200
    assert (await core.read_namespaced_config_map("applied", "default")).data == {"a": "2"}


async def test_dry_run_stores_nothing(core: client.CoreV1Api) -> None:
    cm = await core.create_namespaced_config_map(
        "default", {"metadata": {"name": "dry"}}, dry_run="All"
    )
    assert cm.metadata.name == "dry"
    with pytest.raises(ApiException) as ei:
        await core.read_namespaced_config_map("dry", "default")
    assert ei.value.status == 404


async def test_pod_binding_sets_node(core: client.CoreV1Api) -> None:
    await core.create_namespaced_pod(
        "default",
        {"metadata": {"name": "b"}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
    )
    await core.create_namespaced_pod_binding(
        "b",
        "default",
        {"metadata": {"name": "b"}, "target": {"kind": "Node", "name": "n3"}},
        _preload_content=False,
    )
    assert (await core.read_namespaced_pod("b", "default")).spec.node_name == "n3"
    # binding an already bound pod conflicts (the raw response: no model for Binding replies)
    resp = await core.create_namespaced_pod_binding(
        "b",
        "default",
        {"metadata": {"name": "b"}, "target": {"kind": "Node", "name": "n4"}},
        _preload_content=False,
    )
    assert resp.status == 409


async def test_send_initial_events_ends_with_marked_bookmark(
    kapi: Pair, core: client.CoreV1Api
) -> None:
    srv, _ = kapi
    await core.create_namespaced_config_map("default", {"metadata": {"name": "i1"}})
    params = {
        "watch": "true",
        "sendInitialEvents": "true",
        "allowWatchBookmarks": "true",
        "resourceVersionMatch": "NotOlderThan",
        "timeoutSeconds": "5",
    }
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"{srv.url}/api/v1/namespaces/default/configmaps", params=params) as r,
    ):
        first = json.loads(await r.content.readline())
        second = json.loads(await r.content.readline())
    assert first["type"] == "ADDED" and first["object"]["metadata"]["name"] == "i1"
    assert second["type"] == "BOOKMARK"
    assert second["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


async def test_metrics_endpoint(kapi: Pair, core: client.CoreV1Api) -> None:
    srv, _ = kapi
    await core.list_namespace()
    async with aiohttp.ClientSession() as s, s.get(f"{srv.url}/metrics") as r:
        text = await r.text()
    assert 'kovn_kubeapi_requests_total{code="200",verb="get"}' in text
    assert "kovn_kubeapi_request_duration_seconds_bucket" in text


async def test_leases_optimistic_concurrency(kapi: Pair) -> None:
    coord = client.CoordinationV1Api(kapi[1])
    lease = await coord.create_namespaced_lease(
        "kube-system",
        {
            "metadata": {"name": "kovn-controller"},
            "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15},
        },
    )
    lease.spec.holder_identity = "b"
    await coord.replace_namespaced_lease("kovn-controller", "kube-system", lease)
    lease.spec.holder_identity = "c"  # stale resourceVersion: someone else won
    with pytest.raises(ApiException) as ei:
        await coord.replace_namespaced_lease("kovn-controller", "kube-system", lease)
    assert ei.value.status == 409


async def test_other_kinds_round_trip(kapi: Pair) -> None:
    net = client.NetworkingV1Api(kapi[1])
    disc = client.DiscoveryV1Api(kapi[1])
    core = client.CoreV1Api(kapi[1])
    np = await net.create_namespaced_network_policy(
        "default",
        {"metadata": {"name": "deny"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}},
    )
    assert np.spec.policy_types == ["Ingress"]
    es = await disc.create_namespaced_endpoint_slice(
        "default",
        {
            "metadata": {"name": "s-abc", "labels": {"kubernetes.io/service-name": "s"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.0.0.1"]}],
            "ports": [{"port": 80}],
        },
    )
    assert es.endpoints[0].addresses == ["10.0.0.1"]
    ep = await core.create_namespaced_endpoints(
        "default", {"metadata": {"name": "s"}, "subsets": [{"addresses": [{"ip": "10.0.0.1"}]}]}
    )
    assert ep.subsets[0].addresses[0].ip == "10.0.0.1"
    ev = await core.create_namespaced_event(
        "default",
        {
            "metadata": {"name": "e1"},
            "involvedObject": {"kind": "Pod", "name": "x"},
            "reason": "Test",
            "message": "m",
        },
    )
    assert ev.reason == "Test"


async def test_builtin_unknown_fields_dropped_with_warning_or_rejected(kapi: Pair) -> None:
    srv, _ = kapi
    url = f"{srv.url}/api/v1/namespaces/default/configmaps"
    body = {"metadata": {"name": "typo", "lables": {"a": "b"}}, "dta": {"k": "v"}}
    async with aiohttp.ClientSession() as s:
        async with s.post(url, json=body, params={"fieldValidation": "Strict"}) as r:
            assert r.status == 400
            msg = (await r.json())["message"]
            assert 'unknown field "dta"' in msg and 'unknown field "metadata.lables"' in msg
        async with s.post(url, json=body) as r:
            assert r.status == 201
            assert 'unknown field \\"dta\\"' in r.headers.getall("Warning")[0]
            stored = await r.json()
    assert "dta" not in stored and "lables" not in stored["metadata"]


async def test_secret_string_data_becomes_data(core: client.CoreV1Api) -> None:
    sec = await core.create_namespaced_secret(
        "default", {"metadata": {"name": "s"}, "stringData": {"password": "hunter2"}}
    )
    assert sec.data == {"password": "aHVudGVyMg=="} and sec.string_data is None
    assert sec.type == "Opaque"


async def test_pod_eviction_deletes_gracefully(core: client.CoreV1Api) -> None:
    await core.create_namespaced_pod(
        "default",
        {
            "metadata": {"name": "ev"},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]},
        },
    )
    resp = await core.create_namespaced_pod_eviction(
        "ev",
        "default",
        {"metadata": {"name": "ev"}, "deleteOptions": {"gracePeriodSeconds": 5}},
        _preload_content=False,
    )
    assert resp.status == 201
    p = await core.read_namespaced_pod("ev", "default")
    assert p.metadata.deletion_grace_period_seconds == 5


async def test_table_watch_and_partial_metadata(kapi: Pair, core: client.CoreV1Api) -> None:
    srv, _ = kapi
    rv = (await core.list_namespaced_pod("default")).metadata.resource_version
    await core.create_namespaced_pod(
        "default",
        {"metadata": {"name": "tw"}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
    )
    url = f"{srv.url}/api/v1/namespaces/default/pods"
    async with aiohttp.ClientSession() as s:
        params = {"watch": "1", "resourceVersion": rv, "timeoutSeconds": "5"}
        async with s.get(url, params=params, headers={"Accept": TABLE}) as r:
            ev = json.loads(await r.content.readline())
        assert ev["type"] == "ADDED" and ev["object"]["kind"] == "Table"
        assert ev["object"]["rows"][0]["cells"][0] == "tw"
        partial = "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"
        async with s.get(url, headers={"Accept": partial}) as r:
            body = await r.json()
    assert body["kind"] == "PartialObjectMetadataList"
    assert body["items"][0]["metadata"]["name"] == "tw" and "spec" not in body["items"][0]


async def test_custom_resource_served_in_two_versions(kapi: Pair) -> None:
    crd = {
        "metadata": {"name": "widgets.kovn.io"},
        "spec": {
            "group": "kovn.io",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1beta1",
                    "served": True,
                    "storage": False,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                },
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                },
            ],
        },
    }
    await client.ApiextensionsV1Api(kapi[1]).create_custom_resource_definition(crd)
    api = client.CustomObjectsApi(kapi[1])
    await api.create_namespaced_custom_object(
        "kovn.io",
        "v1beta1",
        "default",
        "widgets",
        {
            "apiVersion": "kovn.io/v1beta1",
            "kind": "Widget",
            "metadata": {"name": "w"},
            "spec": {"a": 1},
        },
    )
    got = await api.get_namespaced_custom_object("kovn.io", "v1", "default", "widgets", "w")
    assert got["apiVersion"] == "kovn.io/v1" and got["spec"] == {"a": 1}
    patched = await api.patch_namespaced_custom_object(
        "kovn.io",
        "v1",
        "default",
        "widgets",
        "w",
        {"spec": {"b": 2}},
        _content_type="application/merge-patch+json",
    )
    assert patched["apiVersion"] == "kovn.io/v1" and patched["spec"] == {"a": 1, "b": 2}
    # a JSON patch must be a list: a dict sent as json-patch is a 400
    with pytest.raises(ApiException) as ei:
        await api.patch_namespaced_custom_object(
            "kovn.io", "v1", "default", "widgets", "w", {"spec": {}}
        )
    assert ei.value.status == 400


async def test_aggregated_discovery(kapi: Pair) -> None:
    srv, _ = kapi
    accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{srv.url}/apis", headers={"Accept": accept}) as r:
            assert "as=APIGroupDiscoveryList" in r.headers["Content-Type"]
            doc = await r.json(content_type=None)
        async with s.get(f"{srv.url}/api", headers={"Accept": accept}) as r:
            core = await r.json(content_type=None)
    assert doc["kind"] == "APIGroupDiscoveryList"
    groups = {i["metadata"]["name"]: i for i in doc["items"]}
    slices = groups["discovery.k8s.io"]["versions"][0]["resources"]
    assert slices[0]["resource"] == "endpointslices" and slices[0]["scope"] == "Namespaced"
    pods = next(r for r in core["items"][0]["versions"][0]["resources"] if r["resource"] == "pods")
    assert {s["subresource"] for s in pods["subresources"]} >= {"status", "binding"}


async def test_subresources_accept_only_their_methods(kapi: Pair, core: client.CoreV1Api) -> None:
    srv, _ = kapi
    await core.create_namespaced_pod(
        "default",
        {"metadata": {"name": "m"}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
    )
    base = f"{srv.url}/api/v1/namespaces/default/pods/m"
    async with aiohttp.ClientSession() as s:
        for method, path in (("PUT", "/binding"), ("GET", "/eviction"), ("DELETE", "/status")):
            async with s.request(method, base + path, json={}) as r:
                assert r.status == 405, (method, path)
        async with s.get(base + "/status") as r:
            assert r.status == 200
