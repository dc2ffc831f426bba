"""The pod gets exactly the routes the controller sends, per NIC: the primary
NIC its routes (default ones included), a secondary NIC whose subnet has a
gateway but no routes none at all (no default route made up from the
gateway), in the pod's netns and in the CNI result alike."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from sandbox import netns
from sandbox.testbed.dataplane import SWITCH, Env
from services.api.controller.v1 import controller_pb2

pytestmark = [pytest.mark.root]

SECOND_SWITCH = "kdp-ls-net1"


def _pod_routes(ns_name: str, family: str) -> list[dict[str, Any]]:
    """The pod's main-table routes of one family, as `ip -j route` shows them."""
    out = netns.run(ns_name, ["ip", "-j", family, "route", "show", "table", "main"]).stdout
    routes: list[dict[str, Any]] = json.loads(out or "[]")
    return routes


def _nic(
    name: str,
    nic: str,
    switch: str,
    mac: str,
    ips: list[tuple[str, str]],
    routes: list[tuple[str, str]],
) -> controller_pb2.PodNetwork:
    return controller_pb2.PodNetwork(
        namespace="default",
        name=name,
        nic=nic,
        logical_port=f"default.{name}.{nic}",
        logical_switch=switch,
        mac=mac,
        mtu=1400,
        ips=[controller_pb2.IPConfig(address=a, gateway=g) for a, g in ips],
        routes=[controller_pb2.Route(destination=d, gateway=g) for d, g in routes],
    )


def _register(env: Env, pn: controller_pb2.PodNetwork) -> None:
    addresses = " ".join([pn.mac, *(ip.address.split("/")[0] for ip in pn.ips)])
    env.ovn.nbctl("--may-exist", "ls-add", pn.logical_switch)
    env.ovn.nbctl("lsp-add", pn.logical_switch, pn.logical_port, "--",
                  "lsp-set-addresses", pn.logical_port, addresses)  # fmt: skip
    env.ctrl.add_pod(pn)


def test_secondary_nic_gets_no_default_route_primary_exactly_its_routes(env: Env) -> None:
    name = "routes-a"
    primary_routes = [
        ("0.0.0.0/0", "10.77.255.254"),
        ("10.99.0.0/16", "10.77.255.254"),
        ("::/0", "fd77::ffff"),
    ]
    eth0 = _nic(name, "eth0", SWITCH, "0a:58:0a:4d:f0:02",
                [("10.77.240.2/16", "10.77.255.254"), ("fd77::f002/64", "fd77::ffff")],
                primary_routes)  # fmt: skip
    # The secondary subnet has gateways; the controller sends no routes for it.
    net1 = _nic(name, "net1", SECOND_SWITCH, "0a:58:0a:4e:00:02",
                [("10.78.0.2/16", "10.78.255.254"), ("fd78::2/64", "fd78::ffff")], [])  # fmt: skip
    _register(env, eth0)
    _register(env, net1)
    ns_name, ns_path = env.pod_netns()
    cid = uuid.uuid4().hex
    conf = env.conf("1.1.0")
    results = {}
    for nic in ("eth0", "net1"):
        res = env.cni(env.env("ADD", cid, ns_path, ifname=nic, pod=name), conf)
        assert res.rc == 0, (nic, res.out, env.log_tail())
        results[nic] = res.out

    # The CNI result: the primary NIC's routes exactly, the secondary's none;
    # the gateways are still reported on the addresses.
    assert results["eth0"]["routes"] == [
        {"dst": "0.0.0.0/0", "gw": "10.77.255.254"},
        {"dst": "10.99.0.0/16", "gw": "10.77.255.254"},
        {"dst": "::/0", "gw": "fd77::ffff"},
    ]
    assert results["net1"].get("routes", []) == []  # an empty list is left out
    assert [ip.get("gateway") for ip in results["net1"]["ips"]] == ["10.78.255.254", "fd78::ffff"]
    assert {ip["interface"] for ip in results["net1"]["ips"]} == {1}
    assert results["net1"]["interfaces"][1]["name"] == "net1"

    # The pod's netns: one default route per family, through eth0; net1 has
    # only the on-link routes of its own prefixes.
    for family, default_gw in (("-4", "10.77.255.254"), ("-6", "fd77::ffff")):
        routes = _pod_routes(ns_name, family)
        defaults = [(r.get("gateway"), r.get("dev")) for r in routes if r["dst"] == "default"]
        assert defaults == [(default_gw, "eth0")], routes
        on_net1 = [r for r in routes if r.get("dev") == "net1"]
        assert all("gateway" not in r for r in on_net1), on_net1
        assert {r["dst"] for r in on_net1} <= {"10.78.0.0/16", "fd78::/64", "fe80::/64"}, on_net1
    via = [(r["dst"], r.get("gateway", "")) for r in _pod_routes(ns_name, "-4") if "gateway" in r]
    assert sorted(via) == [("10.99.0.0/16", "10.77.255.254"), ("default", "10.77.255.254")]

    for nic in ("eth0", "net1"):
        check = env.cni(env.env("CHECK", cid, ns_path, ifname=nic),
                        env.conf("1.1.0", prevResult=results[nic]))  # fmt: skip
        assert check.rc == 0, (nic, check.out)
    for nic in ("net1", "eth0"):
        assert env.cni(env.env("DEL", cid, ns_path, ifname=nic)).rc == 0
