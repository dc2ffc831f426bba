"""The sandbox DNS's records from Services and EndpointSlices (sandbox/dns/records.py)."""

from __future__ import annotations

from typing import Any

from sandbox.dns.records import Srv, build, dashed

Z = "cluster.local"


def svc(ns: str, name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": ns, "name": name}, "spec": spec}


def eps(
    ns: str,
    service: str,
    endpoints: list[dict[str, Any]],
    ports: list[dict[str, Any]] | None = None,
    name: str = "",
    family: str = "IPv4",
) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": ns,
            "name": name or f"{service}-x",
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": family,
        "endpoints": endpoints,
        "ports": ports or [],
    }


def ep(*ips: str, ready: bool | None = True, hostname: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"addresses": list(ips)}
    if ready is not None:
        out["conditions"] = {"ready": ready}
    if hostname:
        out["hostname"] = hostname
    return out


def hosts(zone: Any) -> dict[str, list[str]]:
    return {ip: list(names) for ip, names in zone.hosts}


def test_cluster_ip_service_a_ptr_and_srv_for_named_ports_only() -> None:
    web = svc(
        "default",
        "web",
        clusterIP="10.96.0.20",
        clusterIPs=["10.96.0.20"],
        ports=[
            {"name": "http", "port": 80, "protocol": "TCP"},
            {"name": "dns", "port": 53, "protocol": "UDP"},
            {"port": 8080, "protocol": "TCP"},  # unnamed: no SRV
        ],
    )
    zone = build([web], [])
    fqdn = f"web.default.svc.{Z}"
    assert hosts(zone) == {"10.96.0.20": [fqdn]}  # first name = PTR
    assert set(zone.srv) == {
        Srv(f"_http._tcp.{fqdn}", fqdn, 80, 0, 100),
        Srv(f"_dns._udp.{fqdn}", fqdn, 53, 0, 100),
    }
    assert zone.cnames == ()


def test_dual_stack_cluster_ips_give_a_and_aaaa() -> None:
    zone = build([svc("ns", "s", clusterIP="10.96.0.5", clusterIPs=["10.96.0.5", "fd00::5"])], [])
    assert hosts(zone) == {"10.96.0.5": [f"s.ns.svc.{Z}"], "fd00::5": [f"s.ns.svc.{Z}"]}


def test_headless_ready_endpoints_hostnames_and_srv_to_each_endpoint() -> None:
    db = svc("ns", "db", clusterIP="None", ports=[{"name": "pg", "port": 5432}])
    sl = eps(
        "ns",
        "db",
        [
            ep("10.16.0.1", hostname="db-0"),
            ep("10.16.0.2", ready=None),
            ep("10.16.0.3", ready=False),
        ],
        ports=[{"name": "pg", "port": 15432, "protocol": "TCP"}],
    )
    zone = build([db], [sl])
    fqdn = f"db.ns.svc.{Z}"
    # ready unset counts as ready; not ready is left out
    assert hosts(zone) == {
        "10.16.0.1": [f"db-0.{fqdn}", fqdn],
        "10.16.0.2": [f"10-16-0-2.{fqdn}", fqdn],
    }
    # the endpoint's port (the target port), weight shared out
    assert set(zone.srv) == {
        Srv(f"_pg._tcp.{fqdn}", f"db-0.{fqdn}", 15432, 0, 50),
        Srv(f"_pg._tcp.{fqdn}", f"10-16-0-2.{fqdn}", 15432, 0, 50),
    }


def test_headless_without_ready_endpoints_has_no_records() -> None:
    db = svc("ns", "db", clusterIP="None", ports=[{"name": "pg", "port": 5432}])
    zone = build([db], [eps("ns", "db", [ep("10.16.0.3", ready=False)])])
    assert zone.hosts == () and zone.srv == ()


def test_cluster_ip_service_endpoints_get_names_but_not_the_service_name() -> None:
    web = svc("ns", "web", clusterIP="10.96.0.9", ports=[{"name": "http", "port": 80}])
    sl = eps("ns", "web", [ep("10.16.0.7")], ports=[{"name": "http", "port": 8080}])
    zone = build([web], [sl])
    fqdn = f"web.ns.svc.{Z}"
    assert hosts(zone) == {"10.96.0.9": [fqdn], "10.16.0.7": [f"10-16-0-7.{fqdn}"]}
    assert zone.srv == (Srv(f"_http._tcp.{fqdn}", fqdn, 80, 0, 100),)


def test_slices_are_merged_deduplicated_and_tied_to_their_service_by_label() -> None:
    db = svc("ns", "db", clusterIP="None")
    a = eps("ns", "db", [ep("10.16.0.1"), ep("10.16.0.2")], name="db-a")
    b = eps("ns", "db", [ep("10.16.0.2")], name="db-b")
    v6 = eps("ns", "db", [ep("fd00::1")], name="db-6", family="IPv6")
    fqdn_slice = eps("ns", "db", [ep("example.com")], name="db-f", family="FQDN")
    other_ns = eps("other", "db", [ep("10.16.0.9")])
    unlabelled = {"metadata": {"namespace": "ns", "name": "x"}, "addressType": "IPv4",
                  "endpoints": [ep("10.16.0.8")]}  # fmt: skip
    zone = build([db], [a, b, b, v6, fqdn_slice, other_ns, unlabelled])
    assert sorted(hosts(zone)) == ["10.16.0.1", "10.16.0.2", "fd00::1"]
    assert hosts(zone)["fd00::1"] == [f"fd00--1.db.ns.svc.{Z}", f"db.ns.svc.{Z}"]


def test_external_name_is_a_cname_and_loops_are_dropped() -> None:
    ext = svc("ns", "ext", type="ExternalName", externalName="DB.Example.com.")
    inner = svc("ns", "alias", type="ExternalName", externalName=f"web.ns.svc.{Z}")
    web = svc("ns", "web", clusterIP="10.96.0.3")
    loop_a = svc("ns", "a", type="ExternalName", externalName=f"b.ns.svc.{Z}")
    loop_b = svc("ns", "b", type="ExternalName", externalName=f"a.ns.svc.{Z}")
    into_loop = svc("ns", "c", type="ExternalName", externalName=f"a.ns.svc.{Z}")
    bad = svc("ns", "bad", type="ExternalName", externalName="not a name,really")
    zone = build([ext, inner, web, loop_a, loop_b, into_loop, bad], [])
    assert dict(zone.cnames) == {
        f"ext.ns.svc.{Z}": "db.example.com",
        f"alias.ns.svc.{Z}": f"web.ns.svc.{Z}",
    }


def test_names_dnsmasq_could_not_take_are_skipped() -> None:
    weird = svc("ns", "web", clusterIP="10.96.0.4", ports=[{"name": "a,b", "port": 1}])
    bad_ip = svc("ns", "x", clusterIP="not-an-ip")
    sl = eps("ns", "web", [ep("10.16.0.1", hostname="Bad_Host"), ep("garbage")])
    zone = build([weird, bad_ip], [sl])
    assert zone.srv == ()
    assert hosts(zone) == {
        "10.96.0.4": [f"web.ns.svc.{Z}"],
        "10.16.0.1": [f"10-16-0-1.web.ns.svc.{Z}"],  # invalid hostname: the dashed address
    }


def test_rendering_for_dnsmasq() -> None:
    web = svc("ns", "web", clusterIP="10.96.0.3", ports=[{"name": "http", "port": 80}])
    ext = svc("ns", "ext", type="ExternalName", externalName="example.com")
    zone = build([web, ext], [], zone="k8s.test")
    assert zone.hosts_text() == "10.96.0.3 web.ns.svc.k8s.test\n"
    assert zone.config_lines(ttl=5) == [
        "srv-host=_http._tcp.web.ns.svc.k8s.test,web.ns.svc.k8s.test,80,0,100",
        "cname=ext.ns.svc.k8s.test,example.com,5",
    ]


def test_output_does_not_depend_on_input_order() -> None:
    objs = [svc("b", "s", clusterIP="10.96.0.2"), svc("a", "s", clusterIP="10.96.0.1")]
    assert build(objs, []) == build(list(reversed(objs)), [])


def test_dashed_names() -> None:
    assert dashed("10.0.0.5") == "10-0-0-5"
    assert dashed("fd00::5") == "fd00--5"
    assert dashed("::1") == "0--1"
