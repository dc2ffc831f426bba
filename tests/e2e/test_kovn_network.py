"""kovn end to end: pods made through the API, plugged by kovn-cni, real packets.

One two-node sandbox running kovn (ipam, controller, a dataplane per node)
for the module; each test uses its own namespace so they never see each
other's pods.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from sandbox import components, netns
from tests.e2e.kovn_env import COOLDOWN, KovnEnv, kovn_sandbox, wait_until

pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.fixture(scope="module")
def kovn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KovnEnv]:
    with kovn_sandbox(tmp_path_factory.mktemp("kovn") / "state") as env:
        yield env


def _ns(env: KovnEnv, name: str) -> str:
    env.namespace(name)
    return name


def test_services_healthy_and_nodes_bootstrapped(kovn: KovnEnv) -> None:
    health = components.health(kovn.lay)
    assert health and set(health.values()) == {"SERVING"}, health
    joins = components.node_addresses(kovn.lay)
    assert all(a.startswith("100.64.") for a in joins.values()), joins
    for node in kovn.nodes:
        # kovn-cni is what the kubelet runs, from the node's CNI bin dir.
        assert (kovn.lay.cni_bin_dir(node) / "kovn-cni").exists()


def test_pods_on_different_nodes_ping_and_tcp(kovn: KovnEnv) -> None:
    ns = _ns(kovn, "e2e-cross")
    n1, n2 = kovn.nodes[:2]
    kovn.pod(ns, "a", n1)
    kovn.pod(ns, "b", n2)
    kovn.wait_ready(ns, "a", "b")
    a_ip, b_ip = kovn.pod_ip(ns, "a"), kovn.pod_ip(ns, "b")
    assert a_ip.startswith("10.16.") and b_ip.startswith("10.16.") and a_ip != b_ip
    a_ns, b_ns = kovn.pod_netns(ns, "a"), kovn.pod_netns(ns, "b")
    assert kovn.ping(a_ns, b_ip) and kovn.ping(b_ns, a_ip)
    assert kovn.tcp_bytes(b_ns, a_ns, b_ip) == 2_000_000


def test_pods_in_two_subnets_reach_each_other_through_the_router(kovn: KovnEnv) -> None:
    ns = _ns(kovn, "e2e-bound")
    kovn.subnet("e2e-bound", "10.18.0.0/24", [ns])
    other = _ns(kovn, "e2e-plain")
    n1, n2 = kovn.nodes[:2]
    kovn.pod(ns, "in-subnet", n1)
    kovn.pod(other, "in-default", n2)
    kovn.wait_ready(ns, "in-subnet")
    kovn.wait_ready(other, "in-default")
    sub_ip, def_ip = kovn.pod_ip(ns, "in-subnet"), kovn.pod_ip(other, "in-default")
    # The namespace is bound to the subnet: its pod's address comes from there.
    assert sub_ip.startswith("10.18.0."), sub_ip
    assert def_ip.startswith("10.16."), def_ip
    ann = kovn.get_pod(ns, "in-subnet")["metadata"]["annotations"]
    assert ann["kovn.io/logical_switch"] == "e2e-bound"
    src = kovn.pod_netns(ns, "in-subnet")
    # The gateway of the pod's subnet is the router port: traffic crosses it.
    route = netns.run(src, ["ip", "route", "show", "default"]).stdout
    assert "via 10.18.0.1" in route
    assert kovn.ping(src, def_ip)
    assert kovn.ping(kovn.pod_netns(other, "in-default"), sub_ip)
    # Nodes route the subnet made after they bootstrapped: at once where it
    # has a pod, within the dataplane's route refresh elsewhere.
    assert kovn.ping(kovn.lay.node(n1).netns, sub_ip)
    n2_ns = kovn.lay.node(n2).netns
    wait_until(lambda: kovn.ping(n2_ns, sub_ip, wait=0.5), timeout=15, what=f"{n2} -> {sub_ip}")


def test_node_and_pod_reach_each_other_through_kovn0(kovn: KovnEnv) -> None:
    ns = _ns(kovn, "e2e-node")
    n1, n2 = kovn.nodes[:2]
    kovn.pod(ns, "p1", n1)
    kovn.pod(ns, "p2", n2)
    kovn.wait_ready(ns, "p1", "p2")
    joins = components.node_addresses(kovn.lay)
    for node in (n1, n2):
        node_ns = kovn.lay.node(node).netns
        for pod in ("p1", "p2"):  # same node and the other node
            assert kovn.ping(node_ns, kovn.pod_ip(ns, pod)), f"{node} -> {pod}"
    p1_ns = kovn.pod_netns(ns, "p1")
    for node in (n1, n2):
        assert kovn.ping(p1_ns, joins[node].split("/")[0]), f"p1 -> kovn0 of {node}"


def test_fixed_ip_and_mac_are_honoured(kovn: KovnEnv) -> None:
    ns = _ns(kovn, "e2e-fixed")
    ip, mac = "10.16.3.33", "0a:58:0a:10:03:21"
    kovn.pod(ns, "fixed", kovn.nodes[1], {"kovn.io/ip_address": ip, "kovn.io/mac_address": mac})
    kovn.wait_ready(ns, "fixed")
    assert kovn.pod_ip(ns, "fixed") == ip
    link = netns.run(kovn.pod_netns(ns, "fixed"), ["ip", "-o", "addr", "show", "eth0"]).stdout
    assert f"{ip}/16" in link
    addr = netns.run(kovn.pod_netns(ns, "fixed"), ["cat", "/sys/class/net/eth0/address"])
    assert addr.stdout.strip() == mac
    # The port in OVN carries exactly that pair (port security follows it).
    assert kovn.nb_pod_ports()[f"fixed.{ns}"] == f"{mac} {ip}"
    kovn.pod(ns, "peer", kovn.nodes[0])
    kovn.wait_ready(ns, "peer")
    assert kovn.ping(kovn.pod_netns(ns, "peer"), ip)


def test_invalid_fixed_ip_warns_and_disturbs_nothing(kovn: KovnEnv) -> None:
    ns = _ns(kovn, "e2e-invalid")
    n1, n2 = kovn.nodes[:2]
    kovn.pod(ns, "good-1", n1)
    kovn.pod(ns, "good-2", n2)
    kovn.wait_ready(ns, "good-1", "good-2")
    ports_before = kovn.nb_pod_ports()
    kovn.pod(ns, "bad", n1, {"kovn.io/ip_address": "10.99.0.5"})

    def warned() -> bool:
        return any(e.get("type") == "Warning" for e in kovn.events(ns, "bad"))

    wait_until(warned, timeout=30, what="a Warning event on the pod with an invalid fixed IP")
    messages = " ".join(e.get("message", "") for e in kovn.events(ns, "bad"))
    assert "10.99.0.5" in messages
    bad = kovn.get_pod(ns, "bad")
    assert not bad.get("status", {}).get("podIP")
    assert f"bad.{ns}" not in kovn.nb_pod_ports()
    # Nothing else changed: the other pods' ports are as they were and talk.
    after = kovn.nb_pod_ports()
    assert {k: v for k, v in after.items() if k in ports_before} == ports_before
    assert kovn.ping(kovn.pod_netns(ns, "good-1"), kovn.pod_ip(ns, "good-2"))
    kovn.delete_pods(ns, "bad")


def test_delete_removes_port_and_frees_address_after_cooldown(kovn: KovnEnv) -> None:
    ns = _ns(kovn, "e2e-delete")
    node = kovn.nodes[0]
    kovn.pod(ns, "gone", node)
    kovn.wait_ready(ns, "gone")
    ip = kovn.pod_ip(ns, "gone")
    lsp = f"gone.{ns}"
    assert lsp in kovn.node_ports(node) and lsp in kovn.nb_pod_ports()
    host_if = kovn.node_ports(node)[lsp]
    kovn.delete_pods(ns, "gone")
    deleted = time.monotonic()
    # The kubelet's DEL removed the port and the veth; the controller the LSP.
    assert lsp not in kovn.node_ports(node)
    assert netns.run(
        kovn.lay.node(node).netns, ["ip", "link", "show", host_if], check=False
    ).returncode
    wait_until(lambda: lsp not in kovn.nb_pod_ports(), what="logical port removed")
    # The freed address is held back for the cool-down, then given out again.
    kovn.pod(ns, "again", node, {"kovn.io/ip_address": ip})
    kovn.wait_ready(ns, "again", timeout=COOLDOWN + 30)
    ready_after = time.monotonic() - deleted
    assert kovn.pod_ip(ns, "again") == ip
    assert ready_after >= COOLDOWN * 0.9, f"address reused {ready_after:.2f}s after release"


def test_port_security_drops_spoofed_mac_and_ip(kovn: KovnEnv) -> None:
    ns = _ns(kovn, "e2e-spoof")
    n1, n2 = kovn.nodes[:2]
    kovn.pod(ns, "spoofer", n1)
    kovn.pod(ns, "target", n2)
    kovn.wait_ready(ns, "spoofer", "target")
    src, dst_ip = kovn.pod_netns(ns, "spoofer"), kovn.pod_ip(ns, "target")
    own_ip = kovn.pod_ip(ns, "spoofer")
    assert kovn.ping(src, dst_ip)
    mac = netns.run(src, ["cat", "/sys/class/net/eth0/address"]).stdout.strip()

    def flush() -> None:
        netns.run(src, ["ip", "neigh", "flush", "dev", "eth0"])

    # A MAC of its own choosing: nothing gets out.
    netns.run(src, ["ip", "link", "set", "eth0", "address", "0a:58:de:ad:be:ef"])
    flush()
    assert not kovn.ping(src, dst_ip, count=2, wait=1)
    netns.run(src, ["ip", "link", "set", "eth0", "address", mac])
    flush()
    assert kovn.ping(src, dst_ip, count=3)
    # An IP of its own choosing (the right MAC): nothing gets out either.
    netns.run(src, ["ip", "addr", "flush", "dev", "eth0"])
    netns.run(src, ["ip", "addr", "add", "10.16.250.250/16", "dev", "eth0"])
    netns.run(src, ["ip", "route", "replace", "default", "via", "10.16.0.1"])
    flush()
    assert not kovn.ping(src, dst_ip, count=2, wait=1)
    netns.run(src, ["ip", "addr", "flush", "dev", "eth0"])
    netns.run(src, ["ip", "addr", "add", f"{own_ip}/16", "dev", "eth0"])
    netns.run(src, ["ip", "route", "replace", "default", "via", "10.16.0.1"])
    flush()
    assert kovn.ping(src, dst_ip, count=3)
