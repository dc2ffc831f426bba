"""NetworkPolicies become port groups, shared address sets and ACLs.

Against a real NB and northd, each packet decision checked with
`ovn-trace --ct=new` (a new connection): isolation only of the selected
pods and only in the policy's directions, allows by pod and namespace
selectors and ipBlock, named ports, egress (judged after the load
balancers, so a ClusterIP is judged by its backend), the join subnet always
open (kubelet probes), relabelled pods and namespaces moving in and out of
peer sets, deletion restoring traffic, and a restart writing nothing.
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
from tests.integration.controller.harness import Cluster, Replica, running_cluster, until

NP = "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies"


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with running_cluster(tmp_path) as c:
        yield c


class Pods:
    """The test's pods: their networks, and packets traced between them."""

    def __init__(self, cluster: Cluster, replica: Replica) -> None:
        self.cluster = cluster
        self.replica = replica
        self.net: dict[str, Any] = {}

    async def add(
        self, ns: str, name: str, labels: dict[str, str], ports: list[dict[str, Any]] | None = None
    ) -> None:
        body = {
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"nodeName": "n1",
                     "containers": [{"name": "c", "image": "busybox", "ports": ports or []}]},
        }  # fmt: skip
        await self.cluster.kube.create(f"/api/v1/namespaces/{ns}/pods", body)
        self.net[f"{ns}/{name}"] = await self.replica.stub.GetPodNetwork(
            controller_pb2.GetPodNetworkRequest(namespace=ns, name=name), timeout=20
        )

    def ip(self, pod: str) -> str:
        return str(self.net[pod].ips[0].address.split("/")[0])

    def trace(self, src: str, dst: str, port: int, proto: str = "tcp", vip: str = "") -> bool:
        """Whether a new connection from `src` to `dst` (or to `vip`) reaches `dst`."""
        s, d = self.net[src], self.net[dst]
        eth_dst = names.router_mac("ovn-default") if vip else d.mac
        flow = (
            f'inport == "{s.logical_port}" && eth.src == {s.mac} && eth.dst == {eth_dst} && '
            f"ip4.src == {self.ip(src)} && ip4.dst == {vip or self.ip(dst)} && ip.ttl == 64 && "
            f"{proto} && {proto}.dst == {port}"
        )
        return self._delivered(flow, d.logical_port)

    def trace_from_node(self, node_ip: str, dst: str, port: int) -> bool:
        """A kubelet probe: from the node's join address, in through the router."""
        d = self.net[dst]
        flow = (
            f'inport == "{names.switch_router_port_name("ovn-default")}" && '
            f"eth.src == {names.router_mac('ovn-default')} && eth.dst == {d.mac} && "
            f"ip4.src == {node_ip} && ip4.dst == {self.ip(dst)} && ip.ttl == 63 && "
            f"tcp && tcp.dst == {port}"
        )
        return self._delivered(flow, d.logical_port)

    def _delivered(self, flow: str, port: str) -> bool:
        out = subprocess.run(
            ["ovn-trace", "--minimal", "--ct=new", "--ct=new", "--ct=new",
             f"--db={self.cluster.ovn.sb_remote}", "ovn-default", flow],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        return f'output("{port}")' in out


def _sb_actions(cluster: Cluster) -> str:
    return subprocess.run(
        ["ovn-sbctl", f"--db={cluster.ovn.sb_remote}", "--bare", "--columns=actions", "list",
         "Logical_Flow"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


async def _policy(cluster: Cluster, ns: str, name: str, **spec: Any) -> None:
    body = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}  # fmt: skip
    path = NP.format(ns=ns)
    try:
        await cluster.kube.create(path, body)
    except KubeError as exc:
        if exc.status != 409:
            raise
        current = await cluster.kube.get(f"{path}/{name}")
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        await cluster.kube.request("PUT", f"{path}/{name}", body=body)


async def _label(cluster: Cluster, path: str, labels: dict[str, str | None]) -> None:
    await cluster.kube.merge_patch(path, {"metadata": {"labels": labels}})


async def _settled(cluster: Cluster, replica: Replica) -> None:
    for q in ("pod", "networkpolicy", "netpolpeer"):
        await replica.service.queues[q].wait_idle()
    cluster.nbctl("--wait=sb", "sync")


async def _matrix(
    cluster: Cluster, replica: Replica, pods: Pods, want: dict[tuple[str, str, int], bool]
) -> None:
    """Every (src, dst, port) decision as wanted, within a few seconds."""
    got: dict[tuple[str, str, int], bool] = {}

    async def holds() -> bool:
        await _settled(cluster, replica)
        got.clear()
        got.update({k: pods.trace(*k) for k in want})
        return got == want

    try:
        await until(holds, timeout=10, what="the matrix")
    except TimeoutError:
        wrong = {k: v for k, v in got.items() if want[k] != v}
        raise AssertionError(f"cells differing from the wanted matrix: {wrong}") from None


async def test_policies_isolate_allow_and_follow_labels(cluster: Cluster) -> None:
    await cluster.node("n1")
    await cluster.namespace("other")
    replica = await cluster.start_replica()
    pods = Pods(cluster, replica)
    http = [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    await pods.add("default", "a", {"app": "a"}, http)
    await pods.add("default", "b", {"app": "b"})
    await pods.add("default", "c", {"app": "c"})
    await pods.add("other", "d", {"app": "b"})
    A, B, C, D = "default/a", "default/b", "default/c", "other/d"
    await _settled(cluster, replica)
    everyone = {(s, A, p): True for s in (B, C, D) for p in (80, 8080)}
    await _matrix(cluster, replica, pods, everyone)

    # Deny all ingress to a: only a is isolated, only for ingress; the node still probes it.
    await _policy(cluster, "default", "deny", podSelector={"matchLabels": {"app": "a"}})
    await _matrix(cluster, replica, pods, {**{k: False for k in everyone}, (A, B, 80): True})
    join_ip = "100.64.0.2"
    assert pods.trace_from_node(join_ip, A, 8080)
    assert (REGISTRY.get_sample_value("kovn_netpol_policies") or 0) >= 1
    assert (REGISTRY.get_sample_value("kovn_netpol_to_nb_seconds_count") or 0) >= 1

    # Additive: allow app=b pods of this namespace to the named port http (8080).
    await _policy(cluster, "default", "allow-b", podSelector={"matchLabels": {"app": "a"}},
                  ingress=[{"from": [{"podSelector": {"matchLabels": {"app": "b"}}}],
                            "ports": [{"port": "http"}]}])  # fmt: skip
    want = {k: False for k in everyone} | {(B, A, 8080): True}
    await _matrix(cluster, replica, pods, want)

    # Relabelling c into the peer set lets it in; the address set is shared.
    await _label(cluster, "/api/v1/namespaces/default/pods/c", {"app": "b"})
    await _matrix(cluster, replica, pods, want | {(C, A, 8080): True})
    await _label(cluster, "/api/v1/namespaces/default/pods/c", {"app": "c"})
    await _matrix(cluster, replica, pods, want)

    # A namespace selector (AND a pod selector): d in "other" once labelled.
    await _policy(cluster, "default", "from-other", podSelector={"matchLabels": {"app": "a"}},
                  ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"team": "x"}},
                                      "podSelector": {"matchLabels": {"app": "b"}}}]}])  # fmt: skip
    await _matrix(cluster, replica, pods, want)
    await _label(cluster, "/api/v1/namespaces/other", {"team": "x"})
    both = want | {(D, A, 80): True, (D, A, 8080): True}
    await _matrix(cluster, replica, pods, both)

    # An ipBlock with an except: c's /32 allowed on 80 only.
    await _policy(cluster, "default", "cidr", podSelector={"matchLabels": {"app": "a"}},
                  ingress=[{"from": [{"ipBlock": {"cidr": f"{pods.ip(C).rsplit('.', 1)[0]}.0/24",
                                                  "except": [f"{pods.ip(B)}/32"]}}],
                            "ports": [{"port": 80}]}])  # fmt: skip
    await _matrix(cluster, replica, pods, both | {(C, A, 80): True})

    # Egress: b may only talk to a on 8080 (and to the nodes); a's replies pass.
    await _policy(cluster, "default", "b-out", podSelector={"matchLabels": {"app": "b"}},
                  policyTypes=["Egress"],
                  egress=[{"to": [{"podSelector": {"matchLabels": {"app": "a"}}}],
                           "ports": [{"port": 8080}]}])  # fmt: skip
    out = {(B, A, 8080): True, (B, C, 80): False, (C, B, 80): True, (A, B, 80): True}
    await _matrix(cluster, replica, pods, out)

    # A Service in front of a: the ClusterIP path is judged by the backend port.
    svc = await cluster.kube.create("/api/v1/namespaces/default/services", {
        "metadata": {"name": "web"},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]},
    })  # fmt: skip
    vip = svc["spec"]["clusterIP"]
    await cluster.kube.create("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", {
        "metadata": {"name": "web-1", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": [pods.ip(A)], "conditions": {"ready": True}}],
    })  # fmt: skip
    await replica.service.queues["service"].wait_idle()

    async def via_vip() -> bool:
        await _settled(cluster, replica)
        return pods.trace(B, A, 80, vip=vip) and not pods.trace(C, A, 80, vip=vip)

    await until(via_vip, timeout=10, what="b reaches a through the ClusterIP, c does not")

    # Deleting the policies restores traffic; the peer sets go with the last user.
    before = cluster.nbctl("--bare", "--columns=name", "list", "Address_Set").split()
    assert any(n.startswith("kovn_npp_") for n in before)
    for name in ("deny", "allow-b", "from-other", "cidr", "b-out"):
        await cluster.kube.request("DELETE", f"{NP.format(ns='default')}/{name}")
    await _matrix(cluster, replica, pods, everyone | {(B, C, 80): True})
    await _settled(cluster, replica)
    left = cluster.nbctl("--bare", "--columns=name", "list", "Address_Set").split()
    assert not [n for n in left if n.startswith("kovn_npp_")], left
    assert not cluster.nbctl("--bare", "--columns=name", "list", "Port_Group").split()


async def test_restart_writes_nothing_and_a_bad_policy_gets_an_event(cluster: Cluster) -> None:
    await cluster.node("n1")
    replica = await cluster.start_replica()
    pods = Pods(cluster, replica)
    await pods.add("default", "a", {"app": "a"}, [{"name": "dns", "containerPort": 53,
                                                   "protocol": "UDP"}])  # fmt: skip
    await pods.add("default", "b", {"app": "b"})
    await _policy(cluster, "default", "p1", podSelector={},
                  ingress=[{"from": [{"podSelector": {"matchLabels": {"app": "b"}}}]}],
                  egress=[{"to": [{"podSelector": {}}],
                           "ports": [{"port": "dns", "protocol": "UDP"}]}])  # fmt: skip
    await _policy(cluster, "default", "p2", podSelector={"matchLabels": {"app": "a"}},
                  ingress=[{"from": [{"podSelector": {"matchLabels": {"app": "b"}}}],
                            "ports": [{"protocol": "SCTP", "port": 9}]}])  # fmt: skip
    await _settled(cluster, replica)
    # Three peers, two distinct selectors (p1 and p2 share app=b): two pairs of sets.
    sets = [n for n in cluster.nbctl("--bare", "--columns=name", "list", "Address_Set").split()
            if n.startswith("kovn_npp_")]  # fmt: skip
    assert len(sets) == 4
    assert pods.trace("default/b", "default/a", 53, "udp")
    assert not pods.trace("default/a", "default/b", 80, "udp")  # egress: dns of peers only
    assert pods.trace("default/b", "default/a", 53, "udp")

    # The namespace asks for its policies' drops to be logged, through a meter.
    await cluster.kube.merge_patch(
        "/api/v1/namespaces/default",
        {"metadata": {"annotations": {"kovn.io/enforcement-log": "true"}}},
    )

    async def logged() -> bool:
        await _settled(cluster, replica)
        found = cluster.nbctl("--bare", "--columns=log,meter,severity,name", "find", "ACL",
                              "external_ids:kovn-name=netpol/default/p2/ingress/deny")  # fmt: skip
        return found.split() == [
            "true",
            names.NETPOL_METER,
            "warning",
            "np:default/p2:ingress/deny",
        ]

    await until(logged, what="the drop ACLs logged")
    assert cluster.nbctl("--bare", "--columns=unit", "find", "Meter",
                         f"name={names.NETPOL_METER}").strip() == "pktps"  # fmt: skip
    band = cluster.nbctl("--bare", "--columns=bands", "find", "Meter",
                         f"name={names.NETPOL_METER}").strip()  # fmt: skip
    assert cluster.nbctl("get", "Meter_Band", band, "rate").strip() == "20"
    cluster.nbctl("--wait=sb", "sync")
    flows = _sb_actions(cluster)
    assert f'meter="{names.NETPOL_METER}"' in flows and 'name="np:default/p2:ingress/deny"' in flows

    # A restart over it all writes nothing.
    await cluster.stop_replica(replica)
    again = await cluster.start_replica("r2")
    await until(lambda: again.service.caught_up.is_set(), what="the new leader caught up")
    await _settled(cluster, again)
    assert again.service.last_resync is not None and again.service.last_resync.written == 0
    assert again.ctx.sync.writer.rows_written == 0

    # What kovn cannot read it says so, on the policy, and never fails open.
    body = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "odd", "namespace": "default"},
            "spec": {"podSelector": {}, "ingress": [{}], "futureField": True}}  # fmt: skip
    try:
        await cluster.kube.create(NP.format(ns="default"), body)
    except KubeError:
        pytest.skip("the API refuses unknown NetworkPolicy fields")

    async def warned() -> bool:
        events = await cluster.events_for("default", "odd")
        return any(e["reason"] == "NetworkPolicyNotFullyEnforced" and "futureField"
                   in e["message"] for e in events)  # fmt: skip

    await until(warned, what="a Warning Event naming the field")
