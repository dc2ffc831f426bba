"""High availability: one leader through a Lease, followers forward."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from services.api.controller.v1 import controller_pb2
from tests.integration.controller.harness import Cluster, Replica, running_cluster, until

pytestmark = pytest.mark.slow


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with running_cluster(tmp_path) as c:
        yield c


async def _leader(replicas: list[Replica]) -> Replica:
    while True:
        for r in replicas:
            if r.service.elector is not None and r.service.elector.is_leader:
                return r
        await asyncio.wait(
            [
                asyncio.ensure_future(r.service.elector.changed.wait())
                for r in replicas
                if r.service.elector
            ],
            return_when=asyncio.FIRST_COMPLETED,
        )


async def test_leader_change_mid_churn_allocates_nothing_twice(cluster: Cluster) -> None:
    await cluster.node("n1")
    a = await cluster.start_replica("a")
    b = await cluster.start_replica("b")
    leader = await asyncio.wait_for(_leader([a, b]), 10)
    follower = b if leader is a else a
    assert not follower.service.elector.is_leader  # type: ignore[union-attr]

    total = 60
    for i in range(total // 2):
        await cluster.pod("default", f"p{i}")
    # A follower answers by forwarding to the leader.
    first = await follower.stub.GetPodNetwork(
        controller_pb2.GetPodNetworkRequest(namespace="default", name="p0"), timeout=20
    )
    assert first.ips

    async def create_rest() -> None:
        for i in range(total // 2, total):
            await cluster.pod("default", f"p{i}")

    churn = asyncio.create_task(create_rest())
    await cluster.stop_replica(leader)  # the leader goes away mid churn
    await churn
    new = await asyncio.wait_for(_leader([follower]), 10)
    assert new is follower
    nets = await asyncio.gather(
        *(
            follower.stub.GetPodNetwork(
                controller_pb2.GetPodNetworkRequest(namespace="default", name=f"p{i}"), timeout=30
            )
            for i in range(total)
        )
    )
    ips = [n.ips[0].address for n in nets]
    assert len(set(ips)) == total
    assert nets[0].ips[0].address == first.ips[0].address and nets[0].mac == first.mac
    owners: dict[str, str] = {}
    async for alloc in follower.ctx.ipam.allocations():
        if alloc.owner.namespace == "default":
            assert alloc.owner.pod not in owners
            owners[alloc.owner.pod] = alloc.addresses[0].address
    assert len(owners) == total  # nothing allocated twice, nothing leaked
    for i, net in enumerate(nets):
        assert owners[f"p{i}"] == net.ips[0].address
        pod = await cluster.get_pod("default", f"p{i}")
        assert (
            pod["metadata"]["annotations"]["kovn.io/ip_address"] == net.ips[0].address.split("/")[0]
        )
    ports = cluster.nbctl(
        "--bare", "--columns=name", "find", "Logical_Switch_Port", "external_ids:pod!=x"
    ).split()
    assert len([p for p in ports if p.endswith(".default")]) == total


async def test_leader_killed_without_goodbye_is_replaced_after_lease_expiry(
    cluster: Cluster, tmp_path: Path
) -> None:
    import signal
    import subprocess
    import sys

    from sandbox.testbed.procs import ROOT, wait_ready_file

    await cluster.node("n1")
    ready = tmp_path / "a.ready"
    proc = await asyncio.to_thread(
        subprocess.Popen,
        [sys.executable, "-m", "services.controller.main", "--listen", "127.0.0.1:0",
         "--ready-file", str(ready), "--kubeconfig", str(cluster.kubeapi.kubeconfig_path),
         "--ipam", cluster.ipam.target, "--nb", cluster.ovn.nb_remote, "--identity", "a",
         "--lease-duration", "3", "--renew-deadline", "2", "--retry-period", "0.3",
         "--resync-period", "0", "--gc-period", "0", "--log-level", "warning",
         "--metrics", "127.0.0.1:0", "--usage-period", "0.2"],
        cwd=ROOT, stdout=(tmp_path / "a.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        await asyncio.to_thread(wait_ready_file, ready)
        assert json.loads(ready.read_text())["grpc"]
        lease_path = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kovn-controller"

        async def a_leads() -> bool:
            try:
                lease = await cluster.kube.get(lease_path)
            except Exception:
                return False
            return bool(lease["spec"].get("holderIdentity") == "a")

        await until(a_leads, what="a holds the Lease")
        b = await cluster.start_replica("b")
        # b learns who leads from the Lease; a started first and must hold it.
        await asyncio.wait_for(_leader_known(b), 10)
        assert b.service.elector.leader_identity == "a"  # type: ignore[union-attr]
        for i in range(20):
            await cluster.pod("default", f"q{i}")
        first = await b.stub.GetPodNetwork(  # forwarded to a
            controller_pb2.GetPodNetworkRequest(namespace="default", name="q0"), timeout=20
        )
        node_net = await b.stub.GetNodeNetwork(  # forwarded too
            controller_pb2.GetNodeNetworkRequest(node="n1"), timeout=20
        )
        assert node_net.logical_port == "node-n1" and node_net.ips
        metrics_address = json.loads(ready.read_text())["metrics"]
        exposition = ""

        async def usage_exported() -> bool:
            nonlocal exposition
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://{metrics_address}/metrics") as resp,
            ):
                exposition = await resp.text()
            return "kovn_controller_subnet_addresses{" in exposition

        await until(usage_exported, what="subnet usage exported")
        for name in (
            "kovn_controller_leader 1.0",
            "kovn_controller_reconcile_duration_seconds_bucket",
            "kovn_controller_queue_depth",
            "kovn_controller_nb_transaction_duration_seconds_bucket",
            "kovn_controller_nb_transaction_rows_bucket",
            'kovn_controller_subnet_addresses{family="v4",state="used",subnet="ovn-default"}',
        ):
            assert name in exposition, name
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for i in range(20, 40):
            await cluster.pod("default", f"q{i}")
        await asyncio.wait_for(_leader([b]), 15)
        lease = await cluster.kube.get(lease_path)
        assert lease["spec"]["holderIdentity"] == "b"
        assert lease["spec"]["leaseTransitions"] >= 1
        nets = await asyncio.gather(
            *(
                b.stub.GetPodNetwork(
                    controller_pb2.GetPodNetworkRequest(namespace="default", name=f"q{i}"),
                    timeout=30,
                )
                for i in range(40)
            )
        )
        assert len({n.ips[0].address for n in nets}) == 40
        assert nets[0].ips[0].address == first.ips[0].address
        count = 0
        async for alloc in b.ctx.ipam.allocations():
            count += alloc.owner.namespace == "default"
        assert count == 40
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def _leader_known(replica: Replica) -> None:
    elector = replica.service.elector
    assert elector is not None
    while not elector.leader_identity:
        await elector.changed.wait()


async def test_leader_that_cannot_renew_steps_down_and_stops_writing(cluster: Cluster) -> None:
    from sandbox.kubeapi import KubeApiServer

    await cluster.node("n1")
    replica = await cluster.start_replica("solo")
    elector = replica.service.elector
    assert elector is not None
    await asyncio.wait_for(_leader([replica]), 10)
    await replica.service.ready.wait()
    port = cluster.kubeapi.port
    await cluster.kubeapi.stop()  # the API becomes unreachable under the leader
    started = asyncio.get_running_loop().time()
    while elector.is_leader:
        await asyncio.wait_for(elector.changed.wait(), 10)
    waited = asyncio.get_running_loop().time() - started
    # It gives up within renew_deadline (2 s) plus one retry period, i.e.
    # before lease_duration (3 s) lets another replica take over.
    assert waited < 3.0
    assert not replica.service.leading.is_set()
    assert not any(q.running for q in replica.service.queues.values())
    # The API returns: the same replica leads again and serves.
    cluster.kubeapi = KubeApiServer(cluster.tmp / "kubeapi", port=port)
    await cluster.kubeapi.start()
    await asyncio.wait_for(_leader([replica]), 15)
    await cluster.pod("default", "after")
    net = await replica.stub.GetPodNetwork(
        controller_pb2.GetPodNetworkRequest(namespace="default", name="after"), timeout=20
    )
    assert net.ips
