"""Pod QoS: ingress as linux-htb on the pod's OVS port, egress as tbf in the
pod; both really limit TCP, and DEL leaves no QoS rows behind."""

from __future__ import annotations

import time

import pytest

from sandbox import netns
from sandbox.testbed.dataplane import Env
from tests.tcp_transfer import tcp_transfer

pytestmark = [pytest.mark.root, pytest.mark.slow]

RATE = 20_000_000  # bits per second
PAYLOAD = 4_000_000  # bytes: 1.6 s at RATE, a few ms without a limit


def _transfer_seconds(src_ns: str, dst_ns: str, dst_ip: str) -> float:
    count, seconds = tcp_transfer(dst_ns, src_ns, dst_ip, PAYLOAD)
    assert count == PAYLOAD
    return seconds


def test_ingress_and_egress_limits(env: Env) -> None:
    a_cid, a_ns, a_path, a = env.add("qos-free")
    b_cid, b_ns, b_path, b = env.add("qos-limited", ingress=RATE, egress=RATE)
    assert a.rc == 0 and b.rc == 0, (a.out, b.out)
    host = b.out["interfaces"][0]["name"]
    qos = env.node.vsctl("--columns=type,other_config", "list", "QoS")
    assert "linux-htb" in qos and f'max-rate="{RATE}"' in qos
    assert env.node.vsctl("get", "Port", host, "qos") != "[]"
    tc = netns.run(b_ns, ["tc", "qdisc", "show", "dev", "eth0"]).stdout
    assert "tbf" in tc and "20Mbit" in tc
    a_ip = a.out["ips"][0]["address"].split("/")[0]
    b_ip = b.out["ips"][0]["address"].split("/")[0]
    floor = PAYLOAD * 8 / RATE * 0.6  # generous: bursts and rounding
    started = time.monotonic()
    to_b = _transfer_seconds(a_ns, b_ns, b_ip)
    from_b = _transfer_seconds(b_ns, a_ns, a_ip)
    assert to_b > floor, f"ingress not limited: {to_b:.2f}s"
    assert from_b > floor, f"egress not limited: {from_b:.2f}s"
    assert time.monotonic() - started < 30
    for cid, path in ((a_cid, a_path), (b_cid, b_path)):
        assert env.cni(env.env("DEL", cid, path)).rc == 0
    assert env.node.vsctl("list", "QoS") == "" and env.node.vsctl("list", "Queue") == ""
