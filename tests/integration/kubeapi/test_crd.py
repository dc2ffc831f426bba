"""CustomResourceDefinitions: creating one serves its resources, with the
schema enforced the way Kubernetes enforces it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client import ApiException

from sandbox.kubeapi import KubeApiServer

Pair = tuple[KubeApiServer, client.ApiClient]

SUBNET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "subnets.kovn.io"},
    "spec": {
        "group": "kovn.io",
        "scope": "Cluster",
        "names": {
            "plural": "subnets",
            "singular": "subnet",
            "kind": "Subnet",
            "shortNames": ["subnet"],
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "CIDR", "type": "string", "jsonPath": ".spec.cidrBlock"},
                    {
                        "name": "Protocol",
                        "type": "string",
                        "jsonPath": ".spec.protocol",
                        "priority": 1,
                    },
                ],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["cidrBlock"],
                                "properties": {
                                    "cidrBlock": {"type": "string", "pattern": r"^[0-9./]+$"},
                                    "protocol": {
                                        "type": "string",
                                        "enum": ["IPv4", "IPv6", "Dual"],
                                    },
                                    "vlan": {"type": "integer", "minimum": 0, "maximum": 4094},
                                    "namespaces": {"type": "array", "items": {"type": "string"}},
                                },
                            },
                            "status": {
                                "type": "object",
                                "properties": {"used": {"type": "integer"}},
                            },
                        },
                    }
                },
            }
        ],
    },
}

IPPOOL_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "ippools.kovn.io"},
    "spec": {
        "group": "kovn.io",
        "scope": "Namespaced",
        "names": {"plural": "ippools", "kind": "IPPool"},
        "versions": [
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
            }
        ],
    },
}


@pytest.fixture
async def crds(kapi: Pair) -> client.CustomObjectsApi:
    ext = client.ApiextensionsV1Api(kapi[1])
    await ext.create_custom_resource_definition(SUBNET_CRD)
    await ext.create_custom_resource_definition(IPPOOL_CRD)
    return client.CustomObjectsApi(kapi[1])


def subnet(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "kovn.io/v1", "kind": "Subnet", "metadata": {"name": name}, "spec": spec}


def cause(e: ApiException) -> tuple[int, str, list[dict[str, str]]]:
    st = json.loads(e.body)
    return st["code"], st["message"], st.get("details", {}).get("causes", [])


async def test_crd_is_established_and_discoverable(
    kapi: Pair, crds: client.CustomObjectsApi
) -> None:
    ext = client.ApiextensionsV1Api(kapi[1])
    crd = await ext.read_custom_resource_definition("subnets.kovn.io")
    conds = {c.type: c.status for c in crd.status.conditions}
    assert conds["Established"] == "True"
    res = await client.CustomObjectsApi(kapi[1]).get_api_resources("kovn.io", "v1")
    names = {r.name for r in res.resources}
    assert {"subnets", "subnets/status", "ippools"} <= names


async def test_cluster_scoped_custom_resource_crud(crds: client.CustomObjectsApi) -> None:
    s = await crds.create_cluster_custom_object(
        "kovn.io", "v1", "subnets", subnet("s1", cidrBlock="10.0.0.0/24", protocol="IPv4")
    )
    assert s["metadata"]["generation"] == 1 and s["metadata"]["uid"]
    got = await crds.get_cluster_custom_object("kovn.io", "v1", "subnets", "s1")
    assert got["spec"]["cidrBlock"] == "10.0.0.0/24"
    lst = await crds.list_cluster_custom_object("kovn.io", "v1", "subnets")
    assert [i["metadata"]["name"] for i in lst["items"]] == ["s1"]
    # spec change bumps generation; a merge patch is how custom objects are patched
    s = await crds.patch_cluster_custom_object(
        "kovn.io",
        "v1",
        "subnets",
        "s1",
        {"spec": {"vlan": 10}},
        _content_type="application/merge-patch+json",
    )
    assert s["metadata"]["generation"] == 2
    # status subresource: main resource ignores status, /status changes only status
    s = await crds.patch_cluster_custom_object_status(
        "kovn.io",
        "v1",
        "subnets",
        "s1",
        {"status": {"used": 3}, "spec": {"vlan": 11}},
        _content_type="application/merge-patch+json",
    )
    assert s["status"] == {"used": 3} and s["spec"]["vlan"] == 10
    assert s["metadata"]["generation"] == 2
    await crds.delete_cluster_custom_object("kovn.io", "v1", "subnets", "s1")
    with pytest.raises(ApiException) as ei:
        await crds.get_cluster_custom_object("kovn.io", "v1", "subnets", "s1")
    assert ei.value.status == 404


async def test_namespaced_custom_resource(crds: client.CustomObjectsApi) -> None:
    body = {
        "apiVersion": "kovn.io/v1",
        "kind": "IPPool",
        "metadata": {"name": "p"},
        "spec": {"anything": [1, 2]},
    }
    p = await crds.create_namespaced_custom_object("kovn.io", "v1", "default", "ippools", body)
    assert p["metadata"]["namespace"] == "default"
    assert p["spec"] == {"anything": [1, 2]}  # preserve-unknown-fields keeps it
    with pytest.raises(ApiException) as ei:
        await crds.create_namespaced_custom_object("kovn.io", "v1", "missing", "ippools", body)
    assert ei.value.status == 404


async def test_schema_rejections_name_the_field(crds: client.CustomObjectsApi) -> None:
    cases = [
        (subnet("a", cidrBlock="not a cidr"), "spec.cidrBlock", "should match"),
        (subnet("b"), "spec.cidrBlock", "Required value"),
        (
            subnet("c", cidrBlock="10.0.0.0/8", protocol="IPv5"),
            "spec.protocol",
            "Unsupported value",
        ),
        (subnet("d", cidrBlock="10.0.0.0/8", vlan="ten"), "spec.vlan", "must be of type integer"),
        (subnet("e", cidrBlock="10.0.0.0/8", vlan=5000), "spec.vlan", "less than or equal to 4094"),
        (
            subnet("f", cidrBlock="10.0.0.0/8", namespaces=[1]),
            "spec.namespaces[0]",
            "must be of type string",
        ),
    ]
    for body, field, text in cases:
        with pytest.raises(ApiException) as ei:
            await crds.create_cluster_custom_object("kovn.io", "v1", "subnets", body)
        code, message, causes = cause(ei.value)
        assert code == 422, body
        assert f"{field}: " in message and text in message, message
        assert causes[0]["field"] == field
    # the message reads like Kubernetes'
    with pytest.raises(ApiException) as ei:
        await crds.create_cluster_custom_object(
            "kovn.io", "v1", "subnets", subnet("g", cidrBlock="x")
        )
    assert cause(ei.value)[1] == (
        'Subnet.kovn.io "g" is invalid: spec.cidrBlock: Invalid value: "x": '
        "spec.cidrBlock in body should match '^[0-9./]+$'"
    )


async def test_unknown_fields_pruned_or_rejected_when_strict(
    kapi: Pair, crds: client.CustomObjectsApi
) -> None:
    s = await crds.create_cluster_custom_object(
        "kovn.io", "v1", "subnets", subnet("u", cidrBlock="10.0.0.0/8", bogus=1)
    )
    assert "bogus" not in s["spec"]
    with pytest.raises(ApiException) as ei:
        await crds.create_cluster_custom_object(
            "kovn.io",
            "v1",
            "subnets",
            subnet("v", cidrBlock="10.0.0.0/8", bogus=1),
            field_validation="Strict",
        )
    assert ei.value.status == 400
    assert 'unknown field "spec.bogus"' in cause(ei.value)[1]


async def test_strategic_merge_patch_is_415_for_custom_resources(
    kapi: Pair, crds: client.CustomObjectsApi
) -> None:
    await crds.create_cluster_custom_object(
        "kovn.io", "v1", "subnets", subnet("m", cidrBlock="1.0.0.0/8")
    )
    with pytest.raises(ApiException) as ei:
        await crds.patch_cluster_custom_object(
            "kovn.io",
            "v1",
            "subnets",
            "m",
            {"spec": {"vlan": 1}},
            _content_type="application/strategic-merge-patch+json",
        )
    assert ei.value.status == 415


async def test_update_requires_resource_version_for_custom_resources(
    crds: client.CustomObjectsApi,
) -> None:
    s = await crds.create_cluster_custom_object(
        "kovn.io", "v1", "subnets", subnet("r", cidrBlock="1.0.0.0/8")
    )
    del s["metadata"]["resourceVersion"]
    with pytest.raises(ApiException) as ei:
        await crds.replace_cluster_custom_object("kovn.io", "v1", "subnets", "r", s)
    assert ei.value.status == 422


async def test_watch_custom_resources(crds: client.CustomObjectsApi) -> None:
    lst = await crds.list_cluster_custom_object("kovn.io", "v1", "subnets")
    await crds.create_cluster_custom_object(
        "kovn.io", "v1", "subnets", subnet("w", cidrBlock="1.0.0.0/8")
    )
    w = watch.Watch()
    async for ev in w.stream(
        crds.list_cluster_custom_object,
        "kovn.io",
        "v1",
        "subnets",
        resource_version=lst["metadata"]["resourceVersion"],
        timeout_seconds=5,
    ):
        assert ev["type"] == "ADDED" and ev["object"]["metadata"]["name"] == "w"
        w.stop()


async def test_deleting_crd_removes_its_objects_and_endpoint(
    kapi: Pair, crds: client.CustomObjectsApi
) -> None:
    await crds.create_cluster_custom_object(
        "kovn.io", "v1", "subnets", subnet("z", cidrBlock="1.0.0.0/8")
    )
    lst = await crds.list_cluster_custom_object("kovn.io", "v1", "subnets")
    seen: list[str] = []
    connected = asyncio.Event()

    async def watch_until_end() -> None:
        w = watch.Watch()
        async for ev in w.stream(
            crds.list_cluster_custom_object,
            "kovn.io",
            "v1",
            "subnets",
            resource_version=lst["metadata"]["resourceVersion"],
            timeout_seconds=30,
        ):
            seen.append(ev["type"])
            connected.set()

    watching = asyncio.create_task(watch_until_end())
    await crds.create_cluster_custom_object(
        "kovn.io", "v1", "subnets", subnet("probe", cidrBlock="1.0.0.0/8")
    )
    await asyncio.wait_for(connected.wait(), 10)  # the watch is open
    await client.ApiextensionsV1Api(kapi[1]).delete_custom_resource_definition("subnets.kovn.io")
    with pytest.raises(ApiException) as ei:
        await crds.list_cluster_custom_object("kovn.io", "v1", "subnets")
    assert ei.value.status == 404
    await asyncio.wait_for(watching, 10)  # the stream ended well before its timeout
    assert seen == ["ADDED", "DELETED", "DELETED"]


async def test_invalid_crd_is_rejected(kapi: Pair) -> None:
    bad = json.loads(json.dumps(SUBNET_CRD))
    bad["metadata"]["name"] = "wrong.kovn.io"
    with pytest.raises(ApiException) as ei:
        await client.ApiextensionsV1Api(kapi[1]).create_custom_resource_definition(bad)
    assert ei.value.status == 422


async def test_network_attachment_definitions_are_served(kapi: Pair) -> None:
    api = client.CustomObjectsApi(kapi[1])
    nad = {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": "net1"},
        "spec": {"config": '{"cniVersion": "1.0.0", "type": "kovn"}'},
    }
    got = await api.create_namespaced_custom_object(
        "k8s.cni.cncf.io", "v1", "default", "network-attachment-definitions", nad
    )
    assert got["spec"]["config"] == nad["spec"]["config"]


async def test_schema_defaults_are_applied(kapi: Pair) -> None:
    crd = json.loads(json.dumps(IPPOOL_CRD))
    crd["metadata"]["name"] = "vlans.kovn.io"
    crd["spec"]["names"] = {"plural": "vlans", "kind": "Vlan"}
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"] = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "provider": {"type": "string", "default": "provider0"},
                },
            }
        },
    }
    await client.ApiextensionsV1Api(kapi[1]).create_custom_resource_definition(crd)
    api = client.CustomObjectsApi(kapi[1])
    body = {
        "apiVersion": "kovn.io/v1",
        "kind": "Vlan",
        "metadata": {"name": "v"},
        "spec": {"id": 7},
    }
    v = await api.create_namespaced_custom_object("kovn.io", "v1", "default", "vlans", body)
    assert v["spec"] == {"id": 7, "provider": "provider0"}


async def test_string_formats_are_checked(kapi: Pair) -> None:
    crd = json.loads(json.dumps(IPPOOL_CRD))
    crd["metadata"]["name"] = "gateways.kovn.io"
    crd["spec"]["names"] = {"plural": "gateways", "kind": "Gateway"}
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"] = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "ip": {"type": "string", "format": "ipv4"},
                    "cidr": {"type": "string", "format": "cidr"},
                    "mac": {"type": "string", "format": "mac"},
                },
            }
        },
    }
    await client.ApiextensionsV1Api(kapi[1]).create_custom_resource_definition(crd)
    api = client.CustomObjectsApi(kapi[1])

    def gw(name: str, **spec: str) -> dict[str, Any]:
        return {
            "apiVersion": "kovn.io/v1",
            "kind": "Gateway",
            "metadata": {"name": name},
            "spec": spec,
        }

    await api.create_namespaced_custom_object(
        "kovn.io",
        "v1",
        "default",
        "gateways",
        gw("ok", ip="10.0.0.1", cidr="10.0.0.0/24", mac="0a:58:0a:00:00:01"),
    )
    for field, value in (("ip", "10.0.0.300"), ("cidr", "nope"), ("mac", "0a:58")):
        with pytest.raises(ApiException) as ei:
            await api.create_namespaced_custom_object(
                "kovn.io", "v1", "default", "gateways", gw("bad", **{field: value})
            )
        code, message, causes = cause(ei.value)
        assert code == 422 and causes[0]["field"] == f"spec.{field}", message
