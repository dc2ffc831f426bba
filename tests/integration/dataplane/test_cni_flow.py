"""ADD/CHECK/DEL through kovn-cni against a real node."""

from __future__ import annotations

import uuid

import pytest

from sandbox import netns
from sandbox.testbed.dataplane import Env

pytestmark = [pytest.mark.root]


def test_add_check_del_del(env: Env) -> None:
    cid, ns_name, ns_path, res = env.add("flow-a")
    assert res.rc == 0, res.out
    assert res.out["cniVersion"] == "1.0.0"
    assert res.out["ips"][0]["address"].startswith("10.77.")
    assert "mtu" not in res.out["interfaces"][1]  # 1.0.0 has no mtu
    host = res.out["interfaces"][0]["name"]
    assert host in env.ovs_ports()
    ext = env.node.vsctl("get", "Interface", host, "external_ids")
    assert "ovn-installed" in ext and "default.flow-a" in ext and cid in ext
    for where, dev in ((env.node_ns, host), (ns_name, "eth0")):
        features = netns.run(where, ["ethtool", "-k", dev]).stdout
        for feature in (
            "tx-checksumming",
            "tcp-segmentation-offload",
            "generic-segmentation-offload",
        ):
            assert f"{feature}: off" in features, (dev, feature)
    link = netns.run(ns_name, ["ip", "-o", "addr", "show", "eth0"]).stdout
    assert res.out["ips"][0]["address"] in link
    # IPv4 only: neither end carries IPv6 (no link-local, DAD or MLD chatter
    # into the overlay); the host end never does.
    assert "inet6" not in link, link
    for where, dev in ((env.node_ns, host), (ns_name, "eth0")):
        off = netns.run(where, ["sysctl", "-n", f"net.ipv6.conf.{dev}.disable_ipv6"]).stdout
        assert off.strip() == "1", (where, dev)

    check = env.cni(env.env("CHECK", cid, ns_path), env.conf(prevResult=res.out))
    assert check.rc == 0, check.out

    # CHECK notices what changed behind its back.
    netns.run(ns_name, ["ip", "addr", "flush", "dev", "eth0"])
    bad = env.cni(env.env("CHECK", cid, ns_path), env.conf(prevResult=res.out))
    assert bad.rc == 1 and bad.out["code"] == 104 and "missing" in bad.out["details"]

    for _ in range(2):
        gone = env.cni(env.env("DEL", cid, ns_path), env.conf(prevResult=res.out))
        assert gone.rc == 0, gone.out
    assert host not in env.ovs_ports()
    assert host not in env.node_links()
    assert "eth0" not in netns.run(ns_name, ["ip", "-o", "link"]).stdout


def test_del_without_netns_or_prev_result(env: Env) -> None:
    cid, _ns, _path, res = env.add("flow-b")
    assert res.rc == 0, res.out
    host = res.out["interfaces"][0]["name"]
    out = env.cni(env.env("DEL", cid, ""))
    assert out.rc == 0, out.out
    assert host not in env.ovs_ports() and host not in env.node_links()


def test_del_unknown_container(env: Env) -> None:
    out = env.cni(env.env("DEL", uuid.uuid4().hex, "/var/run/netns/kdp-none"))
    assert out.rc == 0, out.out


def test_add_ifname_already_in_netns(env: Env) -> None:
    env.add_pod("flow-c")
    ns_name, ns_path = env.pod_netns()
    netns.run(ns_name, ["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "kdpx"])
    before = env.ovs_ports()
    out = env.cni(env.env("ADD", uuid.uuid4().hex, ns_path, pod="flow-c"))
    assert out.rc == 1 and out.out["code"] == 102, out.out
    assert "eth0" in out.out["msg"]
    assert env.ovs_ports() == before
    # the other owner's eth0 is untouched, no veth was left behind
    assert "kdpx" in netns.run(ns_name, ["ip", "-o", "link", "show", "eth0"]).stdout
    assert not set(env.node_links()) - set(before)


def test_add_twice_same_container_answers_the_same(env: Env) -> None:
    cid, _ns, ns_path, first = env.add("flow-d")
    assert first.rc == 0, first.out
    again = env.cni(env.env("ADD", cid, ns_path, pod="flow-d"))
    assert again.rc == 0 and again.out == first.out
    assert env.cni(env.env("DEL", cid, ns_path)).rc == 0


def test_status_ready(env: Env) -> None:
    out = env.cni(env.env("STATUS", ifname=""), env.conf("1.1.0"))
    assert out.rc == 0 and out.raw == b""
