"""Real packets between pods plugged by kovn-cni; concurrency; a dataplane
killed in the middle of a batch of ADDs."""

from __future__ import annotations

import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor, as_completed

import pytest

from sandbox import netns
from sandbox.testbed.dataplane import CniResult, Env
from services.dataplane.attachment import host_ifname
from tests.tcp_transfer import tcp_transfer

pytestmark = [pytest.mark.root]


def _ip(res: CniResult) -> str:
    return str(res.out["ips"][0]["address"]).split("/")[0]


def ping(ns_name: str, ip: str) -> bool:
    res = netns.run(ns_name, ["ping", "-c", "1", "-W", "2", ip], check=False)
    return res.returncode == 0


def test_two_pods_ping_and_tcp(env: Env) -> None:
    a_cid, a_ns, a_path, a = env.add("traffic-a")
    b_cid, b_ns, b_path, b = env.add("traffic-b")
    assert a.rc == 0 and b.rc == 0, (a.out, b.out)
    assert ping(a_ns, _ip(b)) and ping(b_ns, _ip(a))
    assert tcp_transfer(b_ns, a_ns, _ip(b), 4_000_000, timeout=10)[0] == 4_000_000
    for cid, path in ((a_cid, a_path), (b_cid, b_path)):
        assert env.cni(env.env("DEL", cid, path)).rc == 0


def test_twenty_concurrent_adds_then_dels(env: Env) -> None:
    before_ports, before_links = set(env.ovs_ports()), set(env.node_links())
    pods = []
    for i in range(20):
        env.add_pod(f"conc-{i}")
        ns_name, ns_path = env.pod_netns()
        pods.append((f"conc-{i}", uuid.uuid4().hex, ns_name, ns_path))
    with ThreadPoolExecutor(20) as pool:
        adds = list(pool.map(lambda p: env.cni(env.env("ADD", p[1], p[3], pod=p[0])), pods))
    assert [r.rc for r in adds] == [0] * 20, [r.out for r in adds if r.rc]
    hosts = {r.out["interfaces"][0]["name"] for r in adds}
    assert len(hosts) == 20 and hosts <= set(env.ovs_ports())
    assert ping(pods[0][2], _ip(adds[19]))
    with ThreadPoolExecutor(20) as pool:
        dels = list(pool.map(lambda p: env.cni(env.env("DEL", p[1], p[3])), pods))
    assert [r.rc for r in dels] == [0] * 20
    assert set(env.ovs_ports()) == before_ports
    assert set(env.node_links()) == before_links
    for _, _, ns_name, _ in pods:
        assert "eth0" not in netns.run(ns_name, ["ip", "-o", "link"]).stdout
        env.delete_pod_netns(ns_name)


@pytest.mark.slow
def test_dataplane_killed_during_adds(env: Env) -> None:
    _p_cid, prober_ns, prober_path, prober = env.add("restart-prober")
    assert prober.rc == 0, prober.out
    pods = []
    for i in range(12):
        # A third never get an answer from the controller: certainly in flight
        # when the dataplane dies, whatever the timing of the others.
        env.add_pod(f"restart-{i}", register=i % 3 != 2)
        ns_name, ns_path = env.pod_netns()
        pods.append((f"restart-{i}", uuid.uuid4().hex, ns_name, ns_path))
    results: dict[str, CniResult] = {}
    with ThreadPoolExecutor(12) as pool:
        futures = {pool.submit(env.cni, env.env("ADD", p[1], p[3], pod=p[0])): p[0] for p in pods}
        ok = 0
        for fut in as_completed(futures):
            results[futures[fut]] = fut.result()
            ok += results[futures[fut]].rc == 0
            if ok == 3 and env.dp is not None:
                env.kill_dataplane()
    env.kill_dataplane()
    acked = {name: r for name, r in results.items() if r.rc == 0}
    failed = {name: r for name, r in results.items() if r.rc != 0}
    assert len(acked) >= 3 and len(failed) >= 4
    assert all(r.out["code"] == 11 for r in failed.values()), [r.out for r in failed.values()]
    ofports_before = {
        r.out["interfaces"][0]["name"]: env.node.vsctl(
            "get", "Interface", r.out["interfaces"][0]["name"], "ofport"
        )
        for r in acked.values()
    }
    env.start_dataplane()
    # Exactly the acknowledged pods (and the prober) keep ports; nothing else remains.
    expected = {r.out["interfaces"][0]["name"] for r in acked.values()}
    expected.add(prober.out["interfaces"][0]["name"])
    assert expected <= set(env.ovs_ports())
    # A port may survive whose ADD finished but whose answer died with the
    # process; the runtime DELs every failed ADD, which removes it (below).
    failed_hosts = {host_ifname(cid, "eth0") for name, cid, _n, _p in pods if name in failed}
    assert set(env.ovs_ports()) - expected <= failed_hosts
    for host, ofport in ofports_before.items():
        assert env.node.vsctl("get", "Interface", host, "ofport") == ofport  # untouched
    for name, r in acked.items():
        assert ping(prober_ns, _ip(r)), name
    for _name, cid, ns_name, ns_path in pods:
        assert env.cni(env.env("DEL", cid, ns_path)).rc == 0
        env.delete_pod_netns(ns_name)
    assert env.cni(env.env("DEL", _p_cid, prober_path)).rc == 0
    assert not set(env.ovs_ports()) & (expected | failed_hosts)
    assert not set(env.node_links()) & (expected | failed_hosts)


def test_dual_stack_pods(env: Env) -> None:
    env.add_pod("ds-a", v6=True)
    env.add_pod("ds-b", v6=True)
    pods = []
    for name in ("ds-a", "ds-b"):
        ns_name, ns_path = env.pod_netns()
        cid = uuid.uuid4().hex
        res = env.cni(env.env("ADD", cid, ns_path, pod=name), env.conf("1.1.0"))
        assert res.rc == 0, res.out
        pods.append((cid, ns_name, ns_path, res))
    b_v6 = pods[1][3].out["ips"][1]["address"].split("/")[0]
    assert ":" in b_v6
    # A pod with an IPv6 address keeps IPv6 on its side (only the host end drops it).
    off = netns.run(pods[0][1], ["sysctl", "-n", "net.ipv6.conf.eth0.disable_ipv6"]).stdout
    assert off.strip() == "0"
    routes = netns.run(pods[0][1], ["ip", "-6", "route"]).stdout
    assert "default via fd77::ffff" in routes
    pinged = netns.run(pods[0][1], ["ping", "-6", "-c", "1", "-W", "3", b_v6], check=False)
    assert pinged.returncode == 0, pinged.stdout + pinged.stderr
    check = env.cni(env.env("CHECK", pods[0][0], pods[0][2]),
                    env.conf("1.1.0", prevResult=pods[0][3].out))  # fmt: skip
    assert check.rc == 0, check.out
    for cid, _ns, path, _res in pods:
        assert env.cni(env.env("DEL", cid, path)).rc == 0


@pytest.mark.slow
def test_restart_keeps_running_pods_traffic(env: Env) -> None:
    a_cid, a_ns, a_path, a = env.add("keep-a")
    b_cid, _b_ns, b_path, b = env.add("keep-b")
    assert a.rc == 0 and b.rc == 0
    ping = subprocess.Popen(
        netns.command(a_ns, ["ping", "-i", "0.05", "-c", "60", "-W", "1", _ip(b)]),
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    env.kill_dataplane()
    env.start_dataplane()
    out, _ = ping.communicate(timeout=30)
    assert " 0% packet loss" in out, out
    metrics = env.metrics()
    assert 'kovn_cni_request_duration_seconds_count{command="STATUS",result="ok"}' in metrics
    for cid, path in ((a_cid, a_path), (b_cid, b_path)):
        assert env.cni(env.env("DEL", cid, path)).rc == 0
    metrics = env.metrics()
    assert 'kovn_cni_request_duration_seconds_count{command="DEL",result="ok"} 2.0' in metrics
    assert "kovn_cni_requests_in_flight 0.0" in metrics


def test_restart_removes_orphans_and_keeps_the_rest(env: Env) -> None:
    keep_cid, _keep_ns, keep_path, keep = env.add("orphan-keep")
    gone_cid, gone_ns, gone_path, gone = env.add("orphan-gone")
    assert keep.rc == 0 and gone.rc == 0
    # The pod's netns disappears without a DEL (its veth pair dies with it),
    # and a veth named like ours exists with no port (an ADD that died early).
    env.delete_pod_netns(gone_ns)
    orphan = "kv" + "0" * 13
    netns.run(env.node_ns, ["ip", "link", "add", orphan, "type", "veth", "peer", "name", "kdporph"])
    env.kill_dataplane()
    env.start_dataplane()
    ports = env.ovs_ports()
    assert keep.out["interfaces"][0]["name"] in ports
    assert gone.out["interfaces"][0]["name"] not in ports
    assert orphan not in env.node_links()
    assert env.cni(env.env("CHECK", keep_cid, keep_path), env.conf(prevResult=keep.out)).rc == 0
    for cid, path in ((keep_cid, keep_path), (gone_cid, gone_path)):
        assert env.cni(env.env("DEL", cid, path)).rc == 0
