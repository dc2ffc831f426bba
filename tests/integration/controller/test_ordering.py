"""Objects applied together reach the controller in any order; the outcome must not depend on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from prometheus_client import REGISTRY

from services.api.controller.v1 import controller_pb2
from tests.integration.controller.harness import Cluster, running_cluster, until


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with running_cluster(tmp_path) as c:
        yield c


def _pod_retries() -> float:
    labels = {"kind": "pod", "outcome": "retry"}
    value = REGISTRY.get_sample_value("kovn_controller_reconcile_duration_seconds_count", labels)
    return value or 0.0


async def test_pod_seen_before_its_namespaces_subnet_still_gets_that_subnet(
    cluster: Cluster,
) -> None:
    await cluster.node("n1")
    replica = await cluster.start_replica()
    await cluster.namespace("late")

    async def namespace_seen() -> bool:
        return replica.ctx.informers.namespaces.get("late") is not None

    await until(namespace_seen, what="the replica has seen namespace late")
    # Hold back this replica's view of Subnets: it meets the pod first, as it
    # may when both are applied at once (watches of two kinds are not ordered).
    subnets = replica.ctx.informers.subnets
    await subnets.stop()
    before = _pod_retries()
    await cluster.subnet("late-net", cidrBlock="10.70.0.0/24", namespaces=["late"])
    await cluster.pod("late", "p")

    async def retried() -> bool:
        return _pod_retries() > before

    await until(retried, what="the pod's reconcile waited for the Subnet")
    assert "late/p/eth0" not in {str(k) for k in replica.ctx.allocations}, (
        "the pod was given an address before its namespace's Subnet was known"
    )

    subnets.start()
    net = await replica.stub.GetPodNetwork(
        controller_pb2.GetPodNetworkRequest(namespace="late", name="p"), timeout=20
    )
    assert net.logical_switch == "late-net"
    assert net.ips[0].address.startswith("10.70.0.")


async def test_pod_seen_before_its_namespaces_ippool_still_gets_a_pool_address(
    cluster: Cluster,
) -> None:
    await cluster.node("n1")
    await cluster.subnet("pool-net", cidrBlock="10.71.0.0/24")
    replica = await cluster.start_replica()
    await cluster.namespace("late-pool")

    async def ready() -> bool:
        ctx = replica.ctx
        return "pool-net" in ctx.subnets and ctx.informers.namespaces.get("late-pool") is not None

    await until(ready, what="the replica has seen subnet pool-net and namespace late-pool")
    # Hold back this replica's view of IPPools: it meets the pod first.
    pools = replica.ctx.informers.ippools
    await pools.stop()
    before = _pod_retries()
    await cluster.kube.create(
        "/apis/kovn.io/v1/ippools",
        {
            "apiVersion": "kovn.io/v1",
            "kind": "IPPool",
            "metadata": {"name": "late-pool"},
            "spec": {"subnet": "pool-net", "ips": ["10.71.0.77"], "namespaces": ["late-pool"]},
        },
    )
    await cluster.pod("late-pool", "p")

    async def retried() -> bool:
        return _pod_retries() > before

    await until(retried, what="the pod's reconcile waited for the IPPool")
    assert "late-pool/p/eth0" not in {str(k) for k in replica.ctx.allocations}, (
        "the pod was given an address before its namespace's IPPool was known"
    )

    pools.start()
    net = await replica.stub.GetPodNetwork(
        controller_pb2.GetPodNetworkRequest(namespace="late-pool", name="p"), timeout=20
    )
    assert [ip.address for ip in net.ips] == ["10.71.0.77/24"]


async def test_namespace_bound_to_an_invalid_ippool_fails_its_pods_by_name(
    cluster: Cluster,
) -> None:
    await cluster.node("n1")
    await cluster.subnet("pool-net2", cidrBlock="10.72.0.0/24")
    await cluster.namespace("bad-pool-ns")
    await cluster.kube.create(
        "/apis/kovn.io/v1/ippools",
        {
            "apiVersion": "kovn.io/v1",
            "kind": "IPPool",
            "metadata": {"name": "bad-pool"},
            # Outside its subnet: the pool is refused, and with it the binding.
            "spec": {"subnet": "pool-net2", "ips": ["10.99.0.1"], "namespaces": ["bad-pool-ns"]},
        },
    )
    replica = await cluster.start_replica()
    await cluster.pod("bad-pool-ns", "p")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await replica.stub.GetPodNetwork(
            controller_pb2.GetPodNetworkRequest(namespace="bad-pool-ns", name="p"), timeout=20
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION, err.value
    assert "bad-pool" in (err.value.details() or "")
    assert "bad-pool-ns/p/eth0" not in {str(k) for k in replica.ctx.allocations}
