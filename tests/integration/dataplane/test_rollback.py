"""ADD failures leave nothing behind: ovn-installed never comes (timeout,
code 11), the controller refuses the pod (codes 100/101)."""

from __future__ import annotations

import uuid

import grpc
import pytest

from sandbox import netns
from sandbox.testbed.dataplane import SWITCH, Env
from sandbox.testbed.fake_controller import pod_network

pytestmark = [pytest.mark.root]


def _nothing_left(env: Env, ns_name: str, before: tuple[set[str], set[str]]) -> None:
    assert set(env.ovs_ports()) == before[0]
    assert set(env.node_links()) == before[1]
    assert "eth0" not in netns.run(ns_name, ["ip", "-o", "link"]).stdout


@pytest.mark.slow
def test_ovn_installed_timeout_rolls_back(env: Env) -> None:
    env.kill_dataplane()
    env.start_dataplane("--ovn-install-timeout", "0.5")
    try:
        # The controller answers, but no logical port exists: ovn-controller
        # never installs it.
        env.ctrl.add_pod(pod_network("no-lsp", "10.77.200.2/16", "0a:58:0a:4d:c8:02",
                                     switch=SWITCH))  # fmt: skip
        ns_name, ns_path = env.pod_netns()
        before = (set(env.ovs_ports()), set(env.node_links()))
        res = env.cni(env.env("ADD", uuid.uuid4().hex, ns_path, pod="no-lsp"))
        assert res.rc == 1 and res.out["code"] == 11, res.out
        assert "ovn-controller did not install" in res.out["msg"]
        _nothing_left(env, ns_name, before)
    finally:
        env.kill_dataplane()
        env.start_dataplane()


def test_controller_refusals_map_to_kovn_codes(env: Env) -> None:
    env.ctrl.refuse["gone"] = (grpc.StatusCode.NOT_FOUND, "no pod default/gone")
    env.ctrl.refuse["taken"] = (grpc.StatusCode.FAILED_PRECONDITION, "ip 10.77.0.9 taken by x")
    env.ctrl.refuse["busy"] = (grpc.StatusCode.UNAVAILABLE, "leader election")
    for pod, code, word in (("gone", 100, "no pod"), ("taken", 101, "taken by x"),
                            ("busy", 11, "UNAVAILABLE")):  # fmt: skip
        ns_name, ns_path = env.pod_netns()
        before = (set(env.ovs_ports()), set(env.node_links()))
        res = env.cni(env.env("ADD", uuid.uuid4().hex, ns_path, pod=pod))
        assert res.rc == 1 and res.out["code"] == code and word in res.out["msg"], res.out
        _nothing_left(env, ns_name, before)


def test_controller_wait_bounded_by_the_callers_deadline(env: Env) -> None:
    """A pod the controller never readies: ADD answers 11 within the shim's
    timeout instead of the shim timing out on its own."""
    ns_name, ns_path = env.pod_netns()
    before = (set(env.ovs_ports()), set(env.node_links()))
    res = env.cni(env.env("ADD", uuid.uuid4().hex, ns_path, pod="never-ready"),
                  env.conf(timeout=2))  # fmt: skip
    assert res.rc == 1 and res.out["code"] == 11, res.out
    assert "DEADLINE_EXCEEDED" in res.out["msg"], res.out
    _nothing_left(env, ns_name, before)
