"""Objects applied together reach the controller in any order; the outcome must not depend on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from prometheus_client import REGISTRY

from services.api.controller.v1 import controller_pb2
from services.controller.informer import Informer
from tests.integration.controller.harness import Cluster, Replica, running_cluster, until


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with running_cluster(tmp_path) as c:
        yield c


def _pod_retries() -> float:
    labels = {"kind": "pod", "outcome": "retry"}
    value = REGISTRY.get_sample_value("kovn_controller_reconcile_duration_seconds_count", labels)
    return value or 0.0


async def _pod_before_binding(
    cluster: Cluster,
    replica: Replica,
    informer: Informer,
    bind: Callable[[], Awaitable[object]],
    namespace: str,
) -> controller_pb2.PodNetwork:
    """Create what binds `namespace` (bind) while the replica's informer of
    its kind is held back, then a pod there: the replica meets the pod first,
    as it may when both are applied at once (watches of two kinds are not
    ordered). The pod must wait, not take an address; once the informer runs
    again the pod's network is returned."""

    async def namespace_seen() -> bool:
        return replica.ctx.informers["namespaces"].get(namespace) is not None

    await until(namespace_seen, what=f"the replica has seen namespace {namespace}")
    await informer.stop()
    before = _pod_retries()
    await bind()
    await cluster.pod(namespace, "p")

    async def retried() -> bool:
        return _pod_retries() > before

    await until(retried, what="the pod's reconcile waited for what binds its namespace")
    assert f"{namespace}/p/eth0" not in {str(k) for k in replica.ctx.allocations}, (
        "the pod was given an address before what binds its namespace was known"
    )
    informer.start()
    return await replica.stub.GetPodNetwork(
        controller_pb2.GetPodNetworkRequest(namespace=namespace, name="p"), timeout=20
    )


async def test_pod_seen_before_its_namespaces_subnet_still_gets_that_subnet(
    cluster: Cluster,
) -> None:
    await cluster.node("n1")
    replica = await cluster.start_replica()
    await cluster.namespace("late")
    net = await _pod_before_binding(
        cluster,
        replica,
        replica.ctx.informers["subnets"],
        lambda: cluster.subnet("late-net", cidrBlock="10.70.0.0/24", namespaces=["late"]),
        "late",
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

    async def subnet_ready() -> bool:
        return "pool-net" in replica.ctx.subnets

    await until(subnet_ready, what="the replica has taken in subnet pool-net")
    net = await _pod_before_binding(
        cluster,
        replica,
        replica.ctx.informers["ippools"],
        lambda: cluster.ippool(
            "late-pool", subnet="pool-net", ips=["10.71.0.77"], namespaces=["late-pool"]
        ),
        "late-pool",
    )
    assert [ip.address for ip in net.ips] == ["10.71.0.77/24"]


async def test_namespace_bound_to_an_invalid_ippool_fails_its_pods_by_name(
    cluster: Cluster,
) -> None:
    await cluster.node("n1")
    await cluster.subnet("pool-net2", cidrBlock="10.72.0.0/24")
    await cluster.namespace("bad-pool-ns")
    # Outside its subnet: the pool is refused, and with it the binding.
    await cluster.ippool(
        "bad-pool", subnet="pool-net2", ips=["10.99.0.1"], namespaces=["bad-pool-ns"]
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
