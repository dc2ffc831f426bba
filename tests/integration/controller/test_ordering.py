"""Objects applied together reach the controller in any order; the outcome must not depend on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

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
