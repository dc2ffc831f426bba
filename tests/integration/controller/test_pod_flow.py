"""Controller end to end: real OVN central, embedded API, ipam subprocess."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from services.api.controller.v1 import controller_pb2
from services.common.kube import KubeError
from tests.integration.controller.harness import Cluster, running_cluster, until

pytestmark = pytest.mark.slow


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with running_cluster(tmp_path) as c:
        yield c


async def test_pods_get_ports_addresses_and_annotations(cluster: Cluster) -> None:
    await cluster.node("n1")
    await cluster.pod("default", "web")
    replica = await cluster.start_replica()
    net = await replica.stub.GetPodNetwork(
        controller_pb2.GetPodNetworkRequest(namespace="default", name="web", node="n1"), timeout=20
    )
    assert net.logical_port == "web.default"
    assert net.logical_switch == "ovn-default"
    assert net.ips[0].address.startswith("10.16.") and net.ips[0].address.endswith("/16")
    assert net.ips[0].gateway == "10.16.0.1"
    assert net.routes[0].destination == "0.0.0.0/0"
    ip = net.ips[0].address.split("/")[0]
    assert f"{net.mac} {ip}" in cluster.nbctl(
        "get", "Logical_Switch_Port", "web.default", "addresses"
    )
    assert "n1" in cluster.nbctl(
        "get", "Logical_Switch_Port", "web.default", "options:requested-chassis"
    )
    assert ip in cluster.nbctl("get", "Logical_Switch_Port", "web.default", "port_security")
    pod = await cluster.get_pod("default", "web")
    annotations = pod["metadata"]["annotations"]
    assert annotations["kovn.io/ip_address"] == ip
    assert annotations["kovn.io/mac_address"] == net.mac
    assert annotations["kovn.io/logical_switch"] == "ovn-default"
    # The router and its port to the default subnet exist, stamped with kovn's owner.
    assert "kovn-owner" in cluster.nbctl("get", "Logical_Router", "kovn-cluster", "external_ids")
    node_net = await replica.stub.GetNodeNetwork(
        controller_pb2.GetNodeNetworkRequest(node="n1"), timeout=10
    )
    assert node_net.ips[0].address.startswith("100.64.")
    assert node_net.cluster_cidrs == ["10.16.0.0/16"]
    node = await cluster.kube.get("/api/v1/nodes/n1")
    assert (
        node["metadata"]["annotations"]["kovn.io/join_ip"] == node_net.ips[0].address.split("/")[0]
    )


async def test_unknown_pod_and_bad_requests_fail_precisely(cluster: Cluster) -> None:
    await cluster.node("n1")
    replica = await cluster.start_replica()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await replica.stub.GetPodNetwork(
            controller_pb2.GetPodNetworkRequest(namespace="default", name="ghost"), timeout=5
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    await cluster.pod("default", "bad-ip", annotations={"kovn.io/ip_address": "10.99.0.5"})
    await cluster.pod("default", "no-subnet", annotations={"kovn.io/logical_switch": "nope"})
    await cluster.pod("default", "good")
    for name, fragment in [
        ("bad-ip", "10.99.0.5 is not inside"),
        ("no-subnet", "'nope' does not exist"),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await replica.stub.GetPodNetwork(
                controller_pb2.GetPodNetworkRequest(namespace="default", name=name), timeout=10
            )
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert fragment in (err.value.details() or "")
    await cluster.kube.create(
        "/api/v1/namespaces/default/pods",
        {
            "metadata": {"name": "hostnet"},
            "spec": {
                "nodeName": "n1",
                "hostNetwork": True,
                "containers": [{"name": "c", "image": "x"}],
            },
        },
    )

    async def hostnet_seen() -> bool:
        return replica.ctx.informers["pods"].get("default/hostnet") is not None

    await until(hostnet_seen, what="hostnet pod cached")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _network(replica, "default", "hostnet")
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "hostnet.default" not in cluster.nbctl(
        "--bare", "--columns=name", "list", "Logical_Switch_Port"
    )
    good = await replica.stub.GetPodNetwork(
        controller_pb2.GetPodNetworkRequest(namespace="default", name="good"), timeout=10
    )
    assert good.ips

    async def warned() -> bool:  # the Event follows the answer
        return bool(await cluster.events_for("default", "bad-ip"))

    await until(warned, what="a Warning Event for bad-ip")
    events = await cluster.events_for("default", "bad-ip")
    assert events[0]["type"] == "Warning" and "10.99.0.5" in events[0]["message"]


async def _network(replica: object, namespace: str, name: str) -> controller_pb2.PodNetwork:
    stub = replica.stub  # type: ignore[attr-defined]
    net: controller_pb2.PodNetwork = await stub.GetPodNetwork(
        controller_pb2.GetPodNetworkRequest(namespace=namespace, name=name), timeout=20
    )
    return net


async def _ready_condition(cluster: Cluster, name: str) -> dict[str, str] | None:
    obj = await cluster.kube.get(f"/apis/kovn.io/v1/subnets/{name}")
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return dict(cond)
    return None


async def test_subnets_namespaces_and_invalid_subnets(cluster: Cluster) -> None:
    await cluster.node("n1")
    await cluster.namespace("team")
    await cluster.subnet(
        "s1", cidrBlock="10.20.0.0/16", namespaces=["team"], excludeIps=["10.20.0.2..10.20.0.200"]
    )
    replica = await cluster.start_replica()
    await cluster.pod("team", "api")
    net = await _network(replica, "team", "api")
    assert net.logical_switch == "s1"
    ip = net.ips[0].address.split("/")[0]
    assert ip.startswith("10.20.") and ip not in {f"10.20.0.{i}" for i in range(1, 201)}
    assert net.ips[0].gateway == "10.20.0.1"
    assert (
        cluster.nbctl("get", "Logical_Router_Port", "kovn-cluster-s1", "networks").strip()
        == '["10.20.0.1/16"]'
    )
    assert "api.team" in cluster.nbctl("--bare", "--columns=name", "list", "Logical_Switch_Port")

    async def ready(name: str, status: str) -> bool:
        cond = await _ready_condition(cluster, name)
        return cond is not None and cond["status"] == status

    await until(lambda: ready("s1", "True"), what="s1 Ready")

    async def usage_reported() -> bool:
        status = (await cluster.kube.get("/apis/kovn.io/v1/subnets/s1")).get("status") or {}
        return status.get("v4UsingIPs") == 1

    await until(usage_reported, what="s1 status shows one used address")
    status = (await cluster.kube.get("/apis/kovn.io/v1/subnets/s1"))["status"]
    assert status["v4AvailableIPs"] == 65536 - 2 - 1 - 199 - 1  # net/bcast, gw, excluded, used
    # Invalid and conflicting subnets: a False condition naming the problem, nothing written.
    await cluster.subnet("bad", cidrBlock="10.30.0.0/16", gateway="10.31.0.1")
    await cluster.subnet("overlap", cidrBlock="10.20.128.0/24")
    await until(lambda: ready("bad", "False"), what="bad not Ready")
    await until(lambda: ready("overlap", "False"), what="overlap not Ready")
    bad = await _ready_condition(cluster, "bad")
    assert bad is not None and bad["reason"] == "InvalidSpec" and "spec.gateway" in bad["message"]
    overlap = await _ready_condition(cluster, "overlap")
    assert overlap is not None and "overlaps subnet s1" in overlap["message"]

    async def warned(name: str) -> bool:  # the Event follows the status/answer
        return bool(await cluster.events_for("default", name))

    await until(lambda: warned("bad"), what="a Warning Event for the bad Subnet")
    warnings = await cluster.events_for("default", "bad")
    assert warnings[0]["type"] == "Warning" and "spec.gateway" in warnings[0]["message"]
    switches = cluster.nbctl("--bare", "--columns=name", "list", "Logical_Switch").split()
    assert sorted(switches) == ["join", "ovn-default", "s1"]
    # A pod asking for the invalid subnet is refused with the reason.
    await cluster.pod("default", "wants-bad", annotations={"kovn.io/logical_switch": "bad"})
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _network(replica, "default", "wants-bad")
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "spec.gateway" in (err.value.details() or "")


async def test_fixed_ip_mac_aliases_and_taken_ip(cluster: Cluster) -> None:
    await cluster.node("n1")
    replica = await cluster.start_replica()
    await cluster.pod(
        "default",
        "fixed",
        annotations={"kovn.io/ip_address": "10.16.5.5", "kovn.io/mac_address": "0a:00:00:00:05:05"},
    )
    await cluster.pod(
        "default", "migrated", annotations={"ovn.kubernetes.io/ip_address": "10.16.6.6"}
    )
    fixed = await _network(replica, "default", "fixed")
    assert fixed.ips[0].address == "10.16.5.5/16" and fixed.mac == "0a:00:00:00:05:05"
    migrated = await _network(replica, "default", "migrated")
    assert migrated.ips[0].address == "10.16.6.6/16"
    await cluster.pod("default", "thief", annotations={"kovn.io/ip_address": "10.16.5.5"})
    await cluster.pod(
        "default", "bad-mac", annotations={"kovn.io/mac_address": "01:00:00:00:00:01"}
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _network(replica, "default", "thief")
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "10.16.5.5" in (err.value.details() or "") and "fixed" in (err.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _network(replica, "default", "bad-mac")
    assert "kovn.io/mac_address" in (err.value.details() or "")
    # The holder keeps its address.
    assert (await _network(replica, "default", "fixed")).ips[0].address == "10.16.5.5/16"


async def _allocated_ips(replica: object) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    async for alloc in replica.ctx.ipam.allocations():  # type: ignore[attr-defined]
        if alloc.owner.namespace != "kovn.nodes":
            out[f"{alloc.owner.namespace}/{alloc.owner.pod}"] = [a.ip for a in alloc.addresses]
    return out


async def test_deletion_and_garbage_collection(cluster: Cluster) -> None:
    await cluster.node("n1")
    replica = await cluster.start_replica()
    for name in ("a", "b", "c"):
        await cluster.pod("default", name)
    for name in ("a", "b", "c"):
        await _network(replica, "default", name)
    await cluster.delete_pod("default", "a")

    def port_gone(port: str) -> bool:
        return (
            port
            not in cluster.nbctl("--bare", "--columns=name", "list", "Logical_Switch_Port").split()
        )

    await until(lambda: port_gone("a.default"), what="port of a removed")
    assert "default/a" not in await _allocated_ips(replica)
    # While no controller runs, a pod goes away: the next leader collects it.
    await cluster.stop_replica(replica)
    await cluster.delete_pod("default", "b")
    replica = await cluster.start_replica("r2")
    await replica.service.caught_up.wait()
    assert port_gone("b.default")
    live = await _allocated_ips(replica)
    assert "default/b" not in live and "default/c" in live
    assert (await _network(replica, "default", "c")).ips[0].address.split("/")[0] == live[
        "default/c"
    ][0]


async def test_restart_with_nothing_changed_writes_nothing(cluster: Cluster) -> None:
    await cluster.node("n1")
    await cluster.node("n2")
    await cluster.subnet("s1", cidrBlock="10.20.0.0/16", namespaces=["default"])
    replica = await cluster.start_replica()
    for i in range(20):
        await cluster.pod("default", f"p{i}", node=f"n{i % 2 + 1}")
    for i in range(20):
        await _network(replica, "default", f"p{i}")
    for queue in replica.service.queues.values():
        await queue.wait_idle()
    versions = {
        i: (await cluster.get_pod("default", f"p{i}"))["metadata"]["resourceVersion"]
        for i in range(20)
    }
    await cluster.stop_replica(replica)

    replica = await cluster.start_replica("r2")
    await replica.service.ready.wait()
    for name in ("pod", "node", "subnet"):
        await replica.service.queues[name].wait_idle()
    for i in range(20):
        await _network(replica, "default", f"p{i}")
    assert replica.service.last_resync.written == 0
    assert replica.ctx.sync.writer.rows_written == 0
    after = {
        i: (await cluster.get_pod("default", f"p{i}"))["metadata"]["resourceVersion"]
        for i in range(20)
    }
    assert after == versions
    # Drift behind kovn's back is repaired by the next resync, and only that row.
    cluster.nbctl("lsp-set-addresses", "p3.default", "0a:00:00:00:00:99 10.20.9.9")
    from services.controller.nb.rows import diff

    registry = replica.service.registry
    assert registry is not None

    async def drift_seen() -> bool:  # the IDL replica updates on its own thread
        return len(diff(registry.desired_rows(), await replica.ctx.nb.snapshot())) > 0

    await until(drift_seen, what="the replica sees the hand edit")
    result = await replica.ctx.sync.resync(registry.desired_rows())
    assert (result.ensured, result.removed, result.written) == (1, 0, 1)
    assert "10.20.9.9" not in cluster.nbctl("get", "Logical_Switch_Port", "p3.default", "addresses")


async def test_subnet_usage_follows_pods_before_the_periodic_refresh(cluster: Cluster) -> None:
    await cluster.node("n1")
    await cluster.namespace("use")
    await cluster.subnet("s-use", cidrBlock="10.44.0.0/24", namespaces=["use"])
    # The periodic refresh is far away: only allocations can trigger one.
    replica = await cluster.start_replica(usage_period=300.0)

    async def using(n: int) -> bool:
        status = (await cluster.kube.get("/apis/kovn.io/v1/subnets/s-use")).get("status") or {}
        return status.get("v4UsingIPs") == n

    for pod in ("a", "b"):
        await cluster.pod("use", pod)
        assert (await _network(replica, "use", pod)).logical_switch == "s-use"
    await until(lambda: using(2), timeout=10, what="s-use status counts both pods")
    await cluster.delete_pod("use", "a")
    await until(lambda: using(1), timeout=10, what="s-use status counts the release")


async def test_ippool_and_subnet_deletion(cluster: Cluster) -> None:
    await cluster.node("n1")
    await cluster.subnet("s2", cidrBlock="10.40.0.0/24")
    await cluster.ippool("pool-a", subnet="s2", ips=["10.40.0.100..10.40.0.101"])
    await cluster.namespace("pooled-ns")
    await cluster.ippool("pool-ns", subnet="s2", ips=["10.40.0.50"], namespaces=["pooled-ns"])
    replica = await cluster.start_replica()
    await cluster.pod("pooled-ns", "by-namespace")
    assert (await _network(replica, "pooled-ns", "by-namespace")).ips[0].address == "10.40.0.50/24"
    await cluster.delete_pod("pooled-ns", "by-namespace")
    await cluster.pod("default", "pooled", annotations={"kovn.io/ip_pool": "pool-a"})
    await cluster.pod("default", "no-pool", annotations={"kovn.io/ip_pool": "pool-zz"})
    net = await _network(replica, "default", "pooled")
    assert net.logical_switch == "s2"
    assert net.ips[0].address in ("10.40.0.100/24", "10.40.0.101/24")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _network(replica, "default", "no-pool")
    assert "pool-zz" in (err.value.details() or "")
    # A subnet in use is not deleted from the NB; once empty, it goes.
    await cluster.kube.delete("/apis/kovn.io/v1/subnets/s2")
    queue = replica.service.queues["subnet"]
    await until(lambda: queue.failures("s2") > 0, what="deletion of s2 attempted")
    assert "s2" in cluster.nbctl("--bare", "--columns=name", "list", "Logical_Switch").split()
    await cluster.delete_pod("default", "pooled")

    def switch_gone() -> bool:
        return (
            "s2" not in cluster.nbctl("--bare", "--columns=name", "list", "Logical_Switch").split()
        )

    await until(switch_gone, timeout=30, what="switch s2 removed")
    assert "kovn-cluster-s2" not in cluster.nbctl(
        "--bare", "--columns=name", "list", "Logical_Router_Port"
    )


async def test_dual_stack_subnet_and_node_removal(cluster: Cluster) -> None:
    await cluster.node("n1")
    await cluster.node("n2")
    await cluster.namespace("v6")
    await cluster.subnet(
        "dual", cidrBlock="10.50.0.0/24,fd00:50::/120", namespaces=["v6"], natOutgoing=True
    )
    replica = await cluster.start_replica()
    await cluster.pod("v6", "both", node="n2")
    net = await _network(replica, "v6", "both")
    assert [ip.address.split("/")[1] for ip in net.ips] == ["24", "120"]
    assert [r.destination for r in net.routes] == ["0.0.0.0/0", "::/0"]
    assert [ip.gateway for ip in net.ips] == ["10.50.0.1", "fd00:50::1"]
    assert net.node == "n2"
    networks = cluster.nbctl("get", "Logical_Router_Port", "kovn-cluster-dual", "networks")
    assert "10.50.0.1/24" in networks and "fd00:50::1/120" in networks
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await replica.stub.GetPodNetwork(
            controller_pb2.GetPodNetworkRequest(namespace="v6", name="both", node="n1"), timeout=5
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    n1 = await replica.stub.GetNodeNetwork(
        controller_pb2.GetNodeNetworkRequest(node="n1"), timeout=10
    )
    assert list(n1.nat_outgoing_cidrs) == ["10.50.0.0/24", "fd00:50::/120"]
    assert sorted(n1.cluster_cidrs) == ["10.16.0.0/16", "10.50.0.0/24", "fd00:50::/120"]
    assert "node-n1" in cluster.nbctl("--bare", "--columns=name", "list", "Logical_Switch_Port")
    await cluster.kube.delete("/api/v1/nodes/n1")

    def port_gone() -> bool:
        return (
            "node-n1"
            not in cluster.nbctl("--bare", "--columns=name", "list", "Logical_Switch_Port").split()
        )

    await until(port_gone, what="join port of n1 removed")

    async def released() -> bool:
        return [a.owner.pod async for a in replica.ctx.ipam.allocations("join")] == ["n2"]

    await until(released, what="join address of n1 released")


async def test_recreated_pod_gets_its_own_answer(cluster: Cluster) -> None:
    await cluster.node("n1")
    replica = await cluster.start_replica()
    old = await cluster.pod("default", "again")
    first = await _network(replica, "default", "again")
    assert first.pod_uid == old["metadata"]["uid"]
    await cluster.delete_pod("default", "again")
    new = await cluster.pod("default", "again")
    uid = new["metadata"]["uid"]
    net = await replica.stub.GetPodNetwork(
        controller_pb2.GetPodNetworkRequest(namespace="default", name="again", pod_uid=uid),
        timeout=20,
    )
    assert net.pod_uid == uid
    pod = await cluster.get_pod("default", "again")
    assert pod["metadata"]["annotations"]["kovn.io/pod_uid"] == uid
    assert pod["metadata"]["annotations"]["kovn.io/ip_address"] == net.ips[0].address.split("/")[0]
    owners = [a async for a in replica.ctx.ipam.allocations() if a.owner.pod == "again"]
    assert len(owners) == 1


async def test_private_subnet_isolation_traced_through_ovn(cluster: Cluster) -> None:
    from services.controller.topology.names import router_mac

    await cluster.node("n1")
    for ns in ("privns", "friendns"):
        await cluster.namespace(ns)
    await cluster.subnet(
        "priv",
        cidrBlock="10.60.0.0/24",
        namespaces=["privns"],
        private=True,
        allowSubnets=["10.61.0.0/24"],
    )
    await cluster.subnet("friend", cidrBlock="10.61.0.0/24", namespaces=["friendns"])
    replica = await cluster.start_replica()
    for ns, name in (("privns", "secret"), ("friendns", "pal"), ("default", "stranger")):
        await cluster.pod(ns, name)
    secret = await _network(replica, "privns", "secret")
    pal = await _network(replica, "friendns", "pal")
    stranger = await _network(replica, "default", "stranger")
    cluster.nbctl("--wait=sb", "sync")

    reached = 'output to "secret.privns"'
    dst = secret.ips[0].address.split("/")[0]

    def trace(src: controller_pb2.PodNetwork, switch: str) -> str:
        flow = (
            f'inport == "{src.logical_port}" && eth.src == {src.mac} && '
            f"eth.dst == {router_mac(switch)} && ip4.src == {src.ips[0].address.split('/')[0]} && "
            f"ip4.dst == {dst} && ip.ttl == 64 && tcp && tcp.dst == 80"
        )
        out = subprocess.run(
            ["ovn-trace", f"--db={cluster.ovn.sb_remote}", switch, flow],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout

    assert reached not in trace(stranger, "ovn-default")
    assert reached in trace(pal, "friend")
    acls = cluster.nbctl("--bare", "--columns=match,action", "list", "ACL")
    assert "ip4.dst == 10.60.0.0/24" in acls and "drop" in acls
    # No longer private: the ACLs go, and the stranger gets through.
    await cluster.kube.merge_patch(
        "/apis/kovn.io/v1/subnets/priv", {"spec": {"private": False, "allowSubnets": None}}
    )
    await until(
        lambda: not cluster.nbctl("--bare", "--columns=_uuid", "list", "ACL").strip(),
        what="ACLs removed",
    )
    cluster.nbctl("--wait=sb", "sync")
    assert reached in trace(stranger, "ovn-default")


async def test_gc_never_frees_the_address_of_a_terminating_pod(cluster: Cluster) -> None:
    from services.controller.allocations import collect_garbage

    await cluster.node("n1")
    replica = await cluster.start_replica()
    await cluster.pod("default", "leaving")
    net = await _network(replica, "default", "leaving")
    # Graceful delete of a bound pod: it stays, terminating, until the kubelet confirms.
    await cluster.kube.delete("/api/v1/namespaces/default/pods/leaving")
    pod = await cluster.get_pod("default", "leaving")
    assert pod["metadata"].get("deletionTimestamp")

    async def terminating_seen() -> bool:
        cached = replica.ctx.informers["pods"].get("default/leaving")
        return bool(cached and cached["metadata"].get("deletionTimestamp"))

    await until(terminating_seen, what="the controller sees the pod terminating")
    assert await collect_garbage(replica.ctx) == 0
    assert (await _allocated_ips(replica))["default/leaving"] == [net.ips[0].address.split("/")[0]]
    assert "leaving.default" in cluster.nbctl(
        "--bare", "--columns=name", "list", "Logical_Switch_Port"
    )
    await cluster.delete_pod("default", "leaving")  # the kubelet's confirmation

    async def released() -> bool:
        return "default/leaving" not in await _allocated_ips(replica)

    await until(released, what="address released once the pod object is gone")


async def test_distributed_egress_leaves_through_the_pods_node(cluster: Cluster) -> None:
    from services.controller.topology.names import address_set_name, router_mac

    await cluster.node("n1")
    await cluster.node("n2")
    replica = await cluster.start_replica()
    await cluster.pod("default", "out1", node="n1")
    await cluster.pod("default", "out2", node="n2")
    a = await _network(replica, "default", "out1")
    b = await _network(replica, "default", "out2")
    n1 = await replica.stub.GetNodeNetwork(
        controller_pb2.GetNodeNetworkRequest(node="n1"), timeout=10
    )
    await replica.service.queues["egress"].wait_idle()
    members = cluster.nbctl("get", "Address_Set", address_set_name("n1", 4), "addresses")
    assert (
        a.ips[0].address.split("/")[0] in members and b.ips[0].address.split("/")[0] not in members
    )
    cluster.nbctl("--wait=sb", "sync")

    def trace(dst: str) -> str:
        flow = (
            f'inport == "{a.logical_port}" && eth.src == {a.mac} && '
            f"eth.dst == {router_mac('ovn-default')} && "
            f"ip4.src == {a.ips[0].address.split('/')[0]} && ip4.dst == {dst} && ip.ttl == 64"
        )
        return subprocess.run(
            ["ovn-trace", f"--db={cluster.ovn.sb_remote}", "ovn-default", flow],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    outside = trace("1.1.1.1")
    assert 'output to "node-n1"' in outside
    assert n1.ips[0].address.split("/")[0] in outside  # next hop: n1's join address
    inside = trace(b.ips[0].address.split("/")[0])
    assert 'output to "out2.default"' in inside and "node-n1" not in inside


async def test_a_lost_nb_database_is_rebuilt(cluster: Cluster) -> None:
    await cluster.node("n1")
    await cluster.subnet("s1", cidrBlock="10.20.0.0/16", namespaces=["default"], private=True)
    replica = await cluster.start_replica()
    for i in range(5):
        await cluster.pod("default", f"w{i}")
    before = {i: await _network(replica, "default", f"w{i}") for i in range(5)}
    for queue in replica.service.queues.values():
        await queue.wait_idle()
    # OVN central comes back with empty databases (as after losing its disk).
    await asyncio.to_thread(cluster.ovn.stop)
    await asyncio.to_thread(cluster.ovn.start)

    def rebuilt() -> bool:
        try:
            ports = cluster.nbctl("--bare", "--columns=name", "list", "Logical_Switch_Port").split()
        except subprocess.CalledProcessError:
            return False
        return all(f"w{i}.default" in ports for i in range(5)) and "node-n1" in ports

    await until(rebuilt, timeout=30, what="kovn's rows rebuilt in the new NB")
    for i, net in before.items():
        ip = net.ips[0].address.split("/")[0]
        assert ip in cluster.nbctl("get", "Logical_Switch_Port", f"w{i}.default", "addresses")
    assert "ip4.dst == 10.20.0.0/16" in cluster.nbctl("--bare", "--columns=match", "list", "ACL")
    routes = cluster.nbctl("--bare", "--columns=ip_prefix", "list", "Logical_Router_Static_Route")
    assert "0.0.0.0/0" in routes
    # And it keeps serving new pods.
    await cluster.pod("default", "fresh")
    assert (await _network(replica, "default", "fresh")).ips


async def test_ipam_outage_is_retried_not_reported(cluster: Cluster) -> None:
    from tests.integration.controller.harness import start_ipam

    await cluster.node("n1")
    replica = await cluster.start_replica()
    await cluster.pod("default", "before")
    await _network(replica, "default", "before")
    await asyncio.to_thread(cluster.ipam.stop)
    await cluster.pod("default", "during")
    waiting = asyncio.create_task(_network(replica, "default", "during"))
    queue = replica.service.queues["pod"]
    await until(lambda: queue.failures("default/during") >= 2, what="allocation retried")
    assert not waiting.done()  # a temporary failure is not the pod's answer
    cluster.ipam = await asyncio.to_thread(start_ipam, cluster.tmp / "ipam")
    net = await asyncio.wait_for(waiting, 30)
    assert (
        net.ips
        and net.ips[0].address != (await _network(replica, "default", "before")).ips[0].address
    )
    assert not await cluster.events_for("default", "during")


async def test_secondary_nics_from_network_attachments(cluster: Cluster) -> None:
    await cluster.node("n1")
    await cluster.subnet("storage", cidrBlock="10.70.0.0/24", provider="storage-net.default")
    await cluster.subnet("backup", cidrBlock="10.71.0.0/24", provider="backup.infra.ovn")
    replica = await cluster.start_replica()
    networks = "storage-net, infra/backup@bk0"
    await cluster.pod(
        "default",
        "multi",
        annotations={
            "k8s.v1.cni.cncf.io/networks": networks,
            "kovn.io/bk0.ip_address": "10.71.0.9",
        },
    )
    primary = await _network(replica, "default", "multi")
    assert primary.logical_switch == "ovn-default" and primary.routes

    async def nic(name: str) -> controller_pb2.PodNetwork:
        net: controller_pb2.PodNetwork = await replica.stub.GetPodNetwork(
            controller_pb2.GetPodNetworkRequest(namespace="default", name="multi", nic=name),
            timeout=20,
        )
        return net

    net1, bk0 = await nic("net1"), await nic("bk0")
    assert (net1.logical_switch, net1.logical_port) == ("storage", "multi.default.net1")
    assert net1.ips[0].address.startswith("10.70.0.") and not net1.routes
    assert bk0.ips[0].address == "10.71.0.9/24" and bk0.logical_port == "multi.default.bk0"
    pod = await cluster.get_pod("default", "multi")
    annotations = pod["metadata"]["annotations"]
    assert annotations["kovn.io/net1.logical_switch"] == "storage"
    assert annotations["kovn.io/bk0.ip_address"] == "10.71.0.9"
    ports = cluster.nbctl("--bare", "--columns=name", "list", "Logical_Switch_Port").split()
    assert {"multi.default", "multi.default.net1", "multi.default.bk0"} <= set(ports)
    # A provider-bound subnet never serves primary NICs; a missing provider is an error.
    await cluster.pod(
        "default", "orphan-nic", annotations={"k8s.v1.cni.cncf.io/networks": "nowhere"}
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await replica.stub.GetPodNetwork(
            controller_pb2.GetPodNetworkRequest(namespace="default", name="orphan-nic", nic="net1"),
            timeout=10,
        )
    assert "nowhere.default" in (err.value.details() or "")
    assert (await _network(replica, "default", "orphan-nic")).logical_switch == "ovn-default"
    # Deleting the pod removes every NIC's port and address.
    await cluster.delete_pod("default", "multi")

    def ports_gone() -> bool:
        names = cluster.nbctl("--bare", "--columns=name", "list", "Logical_Switch_Port").split()
        return not any(n.startswith("multi.default") for n in names)

    await until(ports_gone, what="all ports of multi removed")

    async def released() -> bool:
        return not [a async for a in replica.ctx.ipam.allocations() if a.owner.pod == "multi"]

    await until(released, what="all addresses of multi released")


async def test_node_network_waits_for_a_node_registered_later(cluster: Cluster) -> None:
    replica = await cluster.start_replica()
    await replica.service.ready.wait()

    async def ask() -> controller_pb2.NodeNetwork:
        net: controller_pb2.NodeNetwork = await replica.stub.GetNodeNetwork(
            controller_pb2.GetNodeNetworkRequest(node="late"), timeout=20
        )
        return net

    waiting = asyncio.create_task(ask())
    await until(lambda: replica.ctx.node_board.get("late") is not None, what="the call waits")
    await cluster.node("late")  # the kubelet registers after the node agent asked
    net = await asyncio.wait_for(waiting, 20)
    assert net.logical_port == "node-late" and net.ips
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await replica.stub.GetNodeNetwork(
            controller_pb2.GetNodeNetworkRequest(node="never"), timeout=0.5
        )
    assert err.value.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.DEADLINE_EXCEEDED)


async def test_builtin_subnets_are_objects_with_their_gateways(cluster: Cluster) -> None:
    await cluster.node("n1")
    await cluster.subnet("gw-default", cidrBlock="10.45.0.0/24")
    await cluster.subnet("gw-set", cidrBlock="10.46.0.0/24", gateway="10.46.0.254")
    await cluster.start_replica()

    async def status(name: str) -> dict[str, object]:
        try:
            obj = await cluster.kube.get(f"/apis/kovn.io/v1/subnets/{name}")
        except KubeError:
            return {}
        return dict(obj.get("status") or {})

    async def gateway_is(name: str, want: str) -> bool:
        return (await status(name)).get("gateway") == want

    # The controller created the built-ins as objects, from its configuration.
    await until(lambda: gateway_is("ovn-default", "10.16.0.1"), what="ovn-default's gateway")
    await until(lambda: gateway_is("join", "100.64.0.1"), what="join's gateway")
    builtin = await cluster.kube.get("/apis/kovn.io/v1/subnets/ovn-default")
    assert builtin["spec"]["cidrBlock"] == "10.16.0.0/16"
    # A Subnet that leaves its gateway out shows the one in effect.
    await until(lambda: gateway_is("gw-default", "10.45.0.1"), what="the default gateway")
    await until(lambda: gateway_is("gw-set", "10.46.0.254"), what="the spec's gateway")
    # Edits to a built-in are validated like any Subnet's: the join subnet
    # cannot take pods.
    await cluster.kube.merge_patch(
        "/apis/kovn.io/v1/subnets/join", {"spec": {"namespaces": ["default"]}}
    )

    async def refused() -> bool:
        conditions = (await status("join")).get("conditions") or []
        assert isinstance(conditions, list)
        return any(c.get("status") == "False" and "nodes only" in c.get("message", "")
                   for c in conditions)  # fmt: skip

    await until(refused, what="the join subnet refuses namespaces")
    # A deleted built-in comes back.
    await cluster.kube.request("DELETE", "/apis/kovn.io/v1/subnets/ovn-default")
    await until(lambda: gateway_is("ovn-default", "10.16.0.1"), what="ovn-default recreated")
