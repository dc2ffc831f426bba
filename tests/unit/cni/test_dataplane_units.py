"""Dataplane pure logic: config validation, host names, attachment records,
CNI results, CNI error codes, per-key locks."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from cni_shim import spec
from services.api.controller.v1 import controller_pb2
from services.common.config import ConfigError, load_config
from services.common.errors import DeadlineExceeded, Internal, KovnError, Unavailable
from services.common.ovsdb import OvsdbError
from services.dataplane import errors
from services.dataplane.attachment import Attachment, host_ifname
from services.dataplane.cni import build_result, check_pod_network, result_routes
from services.dataplane.config import DataplaneConfig
from services.dataplane.locks import KeyedLocks


def test_config_defaults_and_errors() -> None:
    cfg = load_config(DataplaneConfig, prog="dataplane", argv=[], env={})
    assert cfg.socket == "/run/kovn/dataplane.sock" and cfg.datapath_type == "netdev"
    assert cfg.bridge == "br-int" and cfg.node_name
    for argv, key in (
        (["--max-parallel", "0"], "max_parallel"),
        (["--datapath-type", "kernel"], "datapath_type"),
        (["--ovn-install-timeout", "-1"], "ovn_install_timeout"),
        (["--bridge", "x" * 16], "bridge"),
    ):
        with pytest.raises(ConfigError) as info:
            load_config(DataplaneConfig, prog="dataplane", argv=argv, env={})
        assert key in str(info.value)


def test_host_ifname_is_deterministic_and_short() -> None:
    a = host_ifname("c" * 64, "eth0")
    assert a == host_ifname("c" * 64, "eth0") and len(a) == 15 and a.startswith("kv")
    assert a != host_ifname("c" * 64, "net1") != host_ifname("d" * 64, "eth0")


def test_attachment_round_trips_through_external_ids() -> None:
    a = Attachment("cid", "eth0", "/run/netns/x", host_ifname("cid", "eth0"), "ns", "pod",
                   "uid", "ns.pod", "0a:58:00:00:00:01", ["10.0.0.2/24", "fd00::2/64"],
                   "kovn", {"cniVersion": "1.1.0"})  # fmt: skip
    ids = a.external_ids()
    assert ids["iface-id"] == "ns.pod"
    back = Attachment.from_external_ids(a.host_ifname, {**ids, "kovn-acked": "true"})
    assert back is not None and back.acked and back.ips == a.ips and back.result == a.result
    assert Attachment.from_external_ids("br-int", {"iface-id": "x"}) is None


def test_result_routes_are_exactly_the_controllers() -> None:
    pn = controller_pb2.PodNetwork(
        mac="0a:58:00:00:00:01", mtu=1400, logical_port="p",
        ips=[controller_pb2.IPConfig(address="10.0.0.2/24", gateway="10.0.0.1"),
             controller_pb2.IPConfig(address="fd00::2/64", gateway="fd00::1")],
        routes=[controller_pb2.Route(destination="0.0.0.0/0", gateway="10.0.0.1"),
                controller_pb2.Route(destination="10.9.0.0/16", gateway="10.0.0.1"),
                controller_pb2.Route(destination="fd09::/64")],
    )  # fmt: skip
    req = spec.Request("ADD", "1.1.0", {}, "cid", "/run/netns/x", "eth0")
    result = build_result(pn, req, "aa:bb:cc:dd:ee:ff")
    # No "::/0" although the IPv6 address has a gateway: only what was sent.
    assert result["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"},
                                {"dst": "10.9.0.0/16", "gw": "10.0.0.1"},
                                {"dst": "fd09::/64"}]  # fmt: skip
    assert result_routes(result) == [("0.0.0.0/0", "10.0.0.1"), ("10.9.0.0/16", "10.0.0.1"),
                                     ("fd09::/64", "")]  # fmt: skip
    assert result["interfaces"][1] == {"name": "eth0", "mac": "0a:58:00:00:00:01",
                                       "sandbox": "/run/netns/x", "mtu": 1400}  # fmt: skip
    assert result["ips"] == [
        {"address": "10.0.0.2/24", "gateway": "10.0.0.1", "interface": 1},
        {"address": "fd00::2/64", "gateway": "fd00::1", "interface": 1},
    ]


def test_result_of_a_secondary_nic_without_routes_has_none() -> None:
    """A gateway is no default route: a secondary NIC gets only its routes."""
    pn = controller_pb2.PodNetwork(
        mac="0a:58:00:00:00:02", logical_port="p.net1", nic="net1",
        ips=[controller_pb2.IPConfig(address="10.1.0.2/24", gateway="10.1.0.1")],
    )  # fmt: skip
    req = spec.Request("ADD", "1.1.0", {}, "cid", "/run/netns/x", "net1")
    result = build_result(pn, req, "aa:bb:cc:dd:ee:ff")
    assert result["routes"] == [] and result_routes(result) == []
    assert result["ips"][0]["gateway"] == "10.1.0.1"


def test_a_route_that_does_not_parse_is_refused() -> None:
    base = controller_pb2.PodNetwork(
        mac="0a:58:00:00:00:02", logical_port="p",
        ips=[controller_pb2.IPConfig(address="10.1.0.2/24", gateway="10.1.0.1")],
    )  # fmt: skip
    check_pod_network(base)
    for dst, gw in (("default", "10.1.0.1"), ("10.9.0.0/16", "fd00::1"), ("::/0", "x")):
        pn = controller_pb2.PodNetwork()
        pn.CopyFrom(base)
        pn.routes.append(controller_pb2.Route(destination=dst, gateway=gw))
        with pytest.raises(errors.PodNetworkRefused, match="bad route"):
            check_pod_network(pn)


def test_dataplane_errors_map_to_cni_codes_and_the_taxonomy() -> None:
    cases: list[tuple[Exception, str, int, grpc.StatusCode, bool]] = [
        (errors.InvalidEnv("K8S_POD_NAME missing", field="CNI_ARGS"), "ADD", 4,
         grpc.StatusCode.INVALID_ARGUMENT, False),
        (errors.InvalidConfig("must be a list"), "GC", 7, grpc.StatusCode.INVALID_ARGUMENT, False),
        (errors.UnknownContainer("no attachment"), "CHECK", 3, grpc.StatusCode.NOT_FOUND, False),
        (errors.PodNotFound("pod a/b"), "ADD", 100, grpc.StatusCode.NOT_FOUND, False),
        (errors.PodNetworkRefused("taken"), "ADD", 101, grpc.StatusCode.FAILED_PRECONDITION,
         False),
        (errors.IfnameTaken("eth0 already exists"), "ADD", 102, grpc.StatusCode.ALREADY_EXISTS,
         False),
        (errors.NetnsMissing("/x: gone"), "ADD", 103, grpc.StatusCode.NOT_FOUND, False),
        (errors.CheckFailed("differs", "d"), "CHECK", 104, grpc.StatusCode.FAILED_PRECONDITION,
         False),
        (Unavailable("starting"), "ADD", 11, grpc.StatusCode.UNAVAILABLE, True),
        (Unavailable("starting"), "STATUS", 50, grpc.StatusCode.UNAVAILABLE, True),
        (OvsdbError("closed"), "DEL", 11, grpc.StatusCode.UNAVAILABLE, True),
        (OvsdbError("closed"), "STATUS", 50, grpc.StatusCode.UNAVAILABLE, True),
        (DeadlineExceeded("not installed"), "ADD", 11, grpc.StatusCode.DEADLINE_EXCEEDED, True),
        (Internal("bug"), "ADD", 105, grpc.StatusCode.INTERNAL, False),
    ]  # fmt: skip
    for exc, command, code, status, retryable in cases:
        assert isinstance(exc, KovnError) and exc.code == status and exc.retryable == retryable
        err = errors.to_cni(exc, command)
        assert err.code == code, (exc, command)
        assert errors.is_bug(exc) == (code == 105)
    assert errors.to_cni(errors.NetnsMissing("/x: gone")).msg == "CNI_NETNS: /x: gone"
    assert errors.to_cni(errors.CheckFailed("differs", "route x")).details == "route x"
    parsed = spec.CniError(6, "stdin: not JSON")
    assert errors.to_cni(parsed) is parsed and not errors.is_bug(parsed)
    bug = errors.to_cni(KeyError("x"))
    assert bug.code == 105 and "KeyError" in bug.msg and errors.is_bug(KeyError("x"))


async def test_keyed_locks_serialize_one_key_only() -> None:
    locks = KeyedLocks()
    order: list[str] = []
    gate = asyncio.Event()

    async def holder() -> None:
        async with locks.hold(("a", "eth0")):
            order.append("a1-start")
            await gate.wait()
            order.append("a1-end")

    async def same_key() -> None:
        async with locks.hold(("a", "eth0")):
            order.append("a2")

    async def other_key() -> None:
        async with locks.hold(("b", "eth0")):
            order.append("b")
        gate.set()

    await asyncio.gather(holder(), same_key(), other_key())
    assert order.index("b") < order.index("a1-end") < order.index("a2")
    assert len(locks) == 0  # no lock outlives its users
