"""NetworkPolicy objects are validated as a real API server validates them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiException

from sandbox.kubeapi import KubeApiServer

Pair = tuple[KubeApiServer, client.ApiClient]


def policy(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"podSelector": {}, **spec}}


async def test_valid_policy_is_stored(kapi: Pair) -> None:
    net = client.NetworkingV1Api(kapi[1])
    spec = {
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [
            {
                "from": [
                    {
                        "podSelector": {"matchLabels": {"app": "web"}},
                        "namespaceSelector": {
                            "matchExpressions": [{"key": "team", "operator": "In", "values": ["a"]}]
                        },
                    },
                    {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
                ],
                "ports": [{"protocol": "TCP", "port": 80, "endPort": 90}, {"port": "http"}],
            }
        ],
        "egress": [
            {"to": [{"ipBlock": {"cidr": "fd00::/64"}}], "ports": [{"protocol": "UDP", "port": 53}]}
        ],
    }
    np = await net.create_namespaced_network_policy("default", policy("ok", spec))
    assert np.spec.ingress[0].ports[0].end_port == 90


async def test_policy_types_and_protocols_are_defaulted(kapi: Pair) -> None:
    net = client.NetworkingV1Api(kapi[1])
    ingress_only = {"ingress": [{"ports": [{"port": 80}]}]}
    got = await net.create_namespaced_network_policy("default", policy("d-in", ingress_only))
    assert got.spec.policy_types == ["Ingress"]
    assert got.spec.ingress[0].ports[0].protocol == "TCP"
    both = {"egress": [{"ports": [{"port": 53, "protocol": "UDP"}, {"port": 443}]}]}
    got = await net.create_namespaced_network_policy("default", policy("d-eg", both))
    assert got.spec.policy_types == ["Ingress", "Egress"]
    assert [p.protocol for p in got.spec.egress[0].ports] == ["UDP", "TCP"]
    # An empty egress list is no egress rule: Ingress only; explicit types are kept.
    got = await net.create_namespaced_network_policy("default", policy("d-empty", {"egress": []}))
    assert got.spec.policy_types == ["Ingress"]
    kept = {"policyTypes": ["Egress"]}
    got = await net.create_namespaced_network_policy("default", policy("d-kept", kept))
    assert got.spec.policy_types == ["Egress"]


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (
            {"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}]},
            "spec.ingress[0].from[0].ipBlock.cidr",
        ),
        (
            {
                "ingress": [
                    {"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["192.168.0.0/16"]}}]}
                ]
            },
            "spec.ingress[0].from[0].ipBlock.except[0]",
        ),
        ({"ingress": [{"from": [{}]}]}, "spec.ingress[0].from[0]"),
        (
            {"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}]},
            "spec.egress[0].to[0]",
        ),
        ({"ingress": [{"ports": [{"protocol": "ICMP"}]}]}, "spec.ingress[0].ports[0].protocol"),
        ({"ingress": [{"ports": [{"port": 70000}]}]}, "spec.ingress[0].ports[0].port"),
        (
            {"ingress": [{"ports": [{"port": 90, "endPort": 80}]}]},
            "spec.ingress[0].ports[0].endPort",
        ),
        ({"policyTypes": ["Sideways"]}, "spec.policyTypes[0]"),
    ],
)
async def test_invalid_policy_is_422_naming_the_field(
    kapi: Pair, spec: dict[str, Any], field: str
) -> None:
    net = client.NetworkingV1Api(kapi[1])
    with pytest.raises(ApiException) as ei:
        await net.create_namespaced_network_policy("default", policy("bad", spec))
    assert ei.value.status == 422
    causes = json.loads(ei.value.body)["details"]["causes"]
    assert causes[0]["field"] == field


async def test_update_is_validated_too(kapi: Pair) -> None:
    net = client.NetworkingV1Api(kapi[1])
    await net.create_namespaced_network_policy("default", policy("u", {}))
    with pytest.raises(ApiException) as ei:
        await net.patch_namespaced_network_policy(
            "u", "default", {"spec": {"policyTypes": ["Nope"]}}
        )
    assert ei.value.status == 422


async def test_endpoints_and_slices_are_validated(kapi: Pair) -> None:
    core = client.CoreV1Api(kapi[1])
    disc = client.DiscoveryV1Api(kapi[1])
    with pytest.raises(ApiException) as ei:
        await core.create_namespaced_endpoints(
            "default",
            {
                "metadata": {"name": "e"},
                "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": 80}]}],
            },
        )
    assert ei.value.status == 422
    assert (
        json.loads(ei.value.body)["details"]["causes"][0]["field"] == "subsets[0].addresses[0].ip"
    )
    with pytest.raises(ApiException) as ei:
        await disc.create_namespaced_endpoint_slice(
            "default",
            {
                "metadata": {"name": "s"},
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["fd00::1"]}],
            },
        )
    assert ei.value.status == 422
    es = await disc.create_namespaced_endpoint_slice(
        "default",
        {
            "metadata": {"name": "s"},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.0.0.1"]}],
            "ports": [{"port": 80, "protocol": "TCP"}],
        },
    )
    assert es.address_type == "IPv4"
    with pytest.raises(ApiException) as ei:  # addressType is immutable
        await disc.patch_namespaced_endpoint_slice(
            "s", "default", {"addressType": "IPv6", "endpoints": []}
        )
    assert ei.value.status == 422
