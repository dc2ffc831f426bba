"""Subnet/IPPool validation and the pure NB translation."""

from __future__ import annotations

from typing import Any

import pytest

from services.common.errors import InvalidArgument
from services.controller import annotations as ann
from services.controller.subnet_spec import overlaps, parse_pool, parse_subnet
from services.controller.topology.ports import NicAddress, pod_port_row
from services.controller.topology.subnet import subnet_rows


def subnet(name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": spec}


def test_dual_stack_subnet_with_defaults() -> None:
    spec = parse_subnet(
        subnet("s1", cidrBlock="fd00:10::/64,10.20.0.0/16", excludeIps=["10.20.0.2..10.20.0.9"])
    )
    assert spec.cidr_strings == ["10.20.0.0/16", "fd00:10::/64"]
    assert spec.gateway_strings == ["10.20.0.1", "fd00:10::1"]
    assert spec.excludes == ("10.20.0.2-10.20.0.9",)
    assert spec.prefix_of("10.20.3.4") == 16
    assert spec.gateway_for("fd00:10::7") == "fd00:10::1"


@pytest.mark.parametrize(
    ("spec", "field", "fragment"),
    [
        ({"cidrBlock": "10.0.0.0/33"}, "spec.cidrBlock", "not a valid CIDR"),
        ({"cidrBlock": "10.0.0.1/16"}, "spec.cidrBlock", "not a valid CIDR"),
        ({"cidrBlock": "10.0.0.0/16,10.1.0.0/16"}, "spec.cidrBlock", "more than one IPv4"),
        ({"cidrBlock": "10.0.0.0/31"}, "spec.cidrBlock", "too small"),
        ({"cidrBlock": "10.0.0.0/16", "gateway": "10.1.0.1"}, "spec.gateway", "outside"),
        ({"cidrBlock": "10.0.0.0/16", "gateway": "bogus"}, "spec.gateway", "not an IP"),
        ({"cidrBlock": "10.0.0.0/16", "excludeIps": ["10.2.0.1"]}, "spec.excludeIps[0]", "outside"),
        (
            {"cidrBlock": "10.0.0.0/16", "excludeIps": ["10.0.0.9..10.0.0.1"]},
            "spec.excludeIps[0]",
            "range",
        ),
        ({"cidrBlock": "10.0.0.0/16", "gatewayType": "sideways"}, "spec.gatewayType", "not one of"),
        (
            {"cidrBlock": "10.0.0.0/16", "allowSubnets": ["10.1.0.0/16"]},
            "spec.allowSubnets",
            "private",
        ),
    ],
)
def test_bad_subnets_name_field_and_value(spec: dict[str, Any], field: str, fragment: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_subnet(subnet("bad", **spec))
    assert err.value.field == field
    assert fragment in str(err.value)


def test_overlap_names_the_other_subnet() -> None:
    a = parse_subnet(subnet("a", cidrBlock="10.0.0.0/16"))
    b = parse_subnet(subnet("b", cidrBlock="10.0.128.0/24"))
    c = parse_subnet(subnet("c", cidrBlock="10.1.0.0/16"))
    assert overlaps(b, [a, c]) == "a (10.0.0.0/16)"
    assert overlaps(c, [a, b]) == ""


def test_pool_requires_subnet_and_ips() -> None:
    assert parse_pool(
        {"metadata": {"name": "p"}, "spec": {"subnet": "s", "ips": ["10.0.0.5..10.0.0.9"]}}
    ).addresses == ("10.0.0.5-10.0.0.9",)
    with pytest.raises(InvalidArgument, match=r"spec\.ips"):
        parse_pool({"metadata": {"name": "p"}, "spec": {"subnet": "s"}})


def test_annotations_read_kube_ovn_aliases_and_prefer_kovn() -> None:
    found = {"ovn.kubernetes.io/ip_address": "10.0.0.9", "kovn.io/mac_address": "0a:00:00:00:00:01"}
    assert ann.read(found, "ip_address") == ("10.0.0.9", "ovn.kubernetes.io/ip_address")
    found["kovn.io/ip_address"] = "10.0.0.10"
    assert ann.read(found, "ip_address")[0] == "10.0.0.10"
    assert ann.read(found, "ip_address", "net1") == ("", "")
    assert ann.key("ip_address", "net1") == "kovn.io/net1.ip_address"


def test_translation_is_deterministic_and_stamps_owner() -> None:
    spec = parse_subnet(subnet("s1", cidrBlock="10.20.0.0/16"))
    rows = subnet_rows(spec)
    assert [r.digest for r in rows] == [r.digest for r in subnet_rows(spec)]
    assert {r.owner for r in rows} == {"subnet/s1"}
    lrp = rows[1]
    assert lrp.columns["networks"] == ["10.20.0.1/16"]
    addr = NicAddress("0a:00:00:00:00:05", ("10.20.0.5/16",))
    port = pod_port_row("ns", "web", "", "s1", addr, "n1")
    assert port.name == "web.ns"
    assert port.columns["port_security"] == ["0a:00:00:00:00:05 10.20.0.5"]
    assert port.external_ids()["kovn-owner"] == "pod/ns/web/eth0"
    moved = pod_port_row("ns", "web", "", "s1", addr, "n2")
    assert moved.digest != port.digest
