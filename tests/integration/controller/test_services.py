"""Services become OVN load balancers, following their EndpointSlices.

Against a real NB and northd: the VIPs, their backends (ready endpoints,
else serving-and-terminating ones, else none and a reject), affinity,
headless and ExternalName Services, removal, the one group every switch
names, and a restart over it all that writes nothing. `ovn-trace` checks
that a pod's packet to the ClusterIP is load-balanced to a backend.
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from services.api.controller.v1 import controller_pb2
from services.common.kube import KubeError
from services.controller.topology import names
from tests.integration.controller.harness import Cluster, running_cluster, until

SVC_PATH = "/api/v1/namespaces/default/services"
SLICE_PATH = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with running_cluster(tmp_path) as c:
        yield c


def _trace(cluster: Cluster, flow: str) -> str:
    return subprocess.run(
        ["ovn-trace", "--ct=new", f"--db={cluster.ovn.sb_remote}", "ovn-default", flow],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


async def _service(cluster: Cluster, name: str, **spec: Any) -> dict[str, Any]:
    body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}
    return await cluster.kube.create(SVC_PATH, body)


def _endpoint(
    ip: str, ready: bool = True, serving: bool = True, terminating: bool = False
) -> dict[str, Any]:
    return {
        "addresses": [ip],
        "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
    }


async def _slice(
    cluster: Cluster, service: str, endpoints: list[dict[str, Any]], name: str = ""
) -> None:
    body = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name or f"{service}-abc",
            "labels": {
                "kubernetes.io/service-name": service,
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
            },
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints,
    }
    try:
        await cluster.kube.create(SLICE_PATH, body)
    except KubeError as exc:
        if exc.status != 409:
            raise
        current = await cluster.kube.get(f"{SLICE_PATH}/{body['metadata']['name']}")
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        await cluster.kube.request("PUT", f"{SLICE_PATH}/{body['metadata']['name']}", body=body)


def _lb(cluster: Cluster, service: str, column: str, proto: str = "tcp") -> str:
    lb = names.load_balancer_name("default", service, proto)
    found = cluster.nbctl("--bare", f"--columns={column}", "find", "Load_Balancer", f"name={lb}")
    return found.strip()


async def test_services_follow_their_endpoint_slices(cluster: Cluster) -> None:
    await cluster.node("n1")
    await cluster.pod("default", "client")
    replica = await cluster.start_replica()
    web = await _service(
        cluster,
        "web",
        ports=[{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
    )
    vip = web["spec"]["clusterIP"]
    await _slice(cluster, "web", [_endpoint("10.16.0.20"), _endpoint("10.16.0.21"),
                                  _endpoint("10.16.0.22", ready=False, serving=False)])  # fmt: skip

    async def backends_are(want: str) -> bool:
        lb = _lb(cluster, "web", "_uuid")
        got = cluster.nbctl("get", "Load_Balancer", lb, f'vips:"{vip}:80"') if lb else "-"
        return got.strip().strip('"') == want

    await until(lambda: backends_are("10.16.0.20:8080,10.16.0.21:8080"), what="ready backends")
    # Every switch (the join switch too) names the one group holding the LB.
    group = cluster.nbctl("--bare", "--columns=_uuid", "find", "Load_Balancer_Group",
                          f"name={names.LB_GROUP}").strip()  # fmt: skip
    for switch in ("ovn-default", "join"):
        assert cluster.nbctl("get", "Logical_Switch", switch, "load_balancer_group").strip() == (
            f"[{group}]"
        )
    members = cluster.nbctl("--bare", "--columns=load_balancer", "find", "Load_Balancer_Group",
                            f"name={names.LB_GROUP}").split()  # fmt: skip
    assert members == [_lb(cluster, "web", "_uuid")]
    assert "reject=true" in _lb(cluster, "web", "options")
    # Visible as metrics: backends per Service, and slice change -> NB latency.
    # (nbctl sees the rows a moment before the controller's write returns)
    labels = {"namespace": "default", "service": "web"}
    await until(
        lambda: REGISTRY.get_sample_value("kovn_lb_backends", labels) == 2, what="backend metric"
    )
    assert (REGISTRY.get_sample_value("kovn_endpointslice_to_nb_seconds_count") or 0) >= 1

    # A packet from a pod to the ClusterIP is load-balanced to a backend.
    client = await replica.stub.GetPodNetwork(
        controller_pb2.GetPodNetworkRequest(namespace="default", name="client"), timeout=20
    )
    cluster.nbctl("--wait=sb", "sync")
    ip = client.ips[0].address.split("/")[0]
    flow = (
        f'inport == "{client.logical_port}" && eth.src == {client.mac} && '
        f"eth.dst == {names.router_mac('ovn-default')} && ip4.src == {ip} && "
        f"ip4.dst == {vip} && ip.ttl == 64 && tcp && tcp.dst == 80"
    )
    trace = _trace(cluster, flow)
    assert "ct_lb_mark(backends=10.16.0.20:8080,10.16.0.21:8080)" in trace

    # None ready: the serving-and-terminating ones take over (kube-proxy's fallback).
    await _slice(cluster, "web", [_endpoint("10.16.0.20", ready=False, terminating=True),
                                  _endpoint("10.16.0.21", ready=False, serving=False,
                                            terminating=True)])  # fmt: skip
    await until(lambda: backends_are("10.16.0.20:8080"), what="terminating fallback")
    # No endpoint at all: the VIP stays, empty, and rejects.
    await _slice(cluster, "web", [])
    await until(lambda: backends_are(""), what="no backends")

    # ClientIP affinity; headless and ExternalName Services get no LB.
    await _service(cluster, "sticky", sessionAffinity="ClientIP",
                   ports=[{"name": "http", "port": 81, "protocol": "TCP"}])  # fmt: skip
    await until(lambda: "ip_src" in _lb(cluster, "sticky", "selection_fields"),
                what="affinity")  # fmt: skip
    assert "affinity_timeout" not in _lb(cluster, "sticky", "options")
    await _service(cluster, "headless", clusterIP="None",
                   ports=[{"name": "http", "port": 80, "protocol": "TCP"}])  # fmt: skip
    await _service(cluster, "ext", type="ExternalName", externalName="example.com")
    await _slice(cluster, "headless", [_endpoint("10.16.0.30")], name="headless-abc")
    await replica.service.queues["service"].wait_idle()
    await replica.service.queues["endpointslice"].wait_idle()
    assert _lb(cluster, "headless", "_uuid") == "" and _lb(cluster, "ext", "_uuid") == ""

    # A restart over all of it writes nothing.
    await cluster.stop_replica(replica)
    again = await cluster.start_replica("r2")
    await until(lambda: again.service.caught_up.is_set(), what="the new leader caught up")
    assert again.service.last_resync is not None and again.service.last_resync.written == 0
    assert again.ctx.sync.writer.rows_written == 0

    # Deleted: its LB leaves the group and the NB.
    await cluster.kube.request("DELETE", f"{SVC_PATH}/sticky")
    await until(lambda: _lb(cluster, "sticky", "_uuid") == "", what="the LB removed")
    members = cluster.nbctl("--bare", "--columns=load_balancer", "find", "Load_Balancer_Group",
                            f"name={names.LB_GROUP}").split()  # fmt: skip
    assert members == [_lb(cluster, "web", "_uuid")]
