"""Cluster DNS in a kovn sandbox, asked from inside a pod's network namespace.

One two-node kovn sandbox for the module, with its DNS (sandbox/dns: a
dnsmasq per node on kovn0, fed from Services and EndpointSlices). Queries
are made with dig and nslookup from a pod's netns to the pod's node's kovn0
address (and the other node's), the way a pod's resolver would ask once its
resolv.conf names the DNS server. EndpointSlices of selector-less Services are
written here (labels `kubernetes.io/service-name` and
`endpointslice.kubernetes.io/managed-by` naming this test, as any
controller other than the EndpointSlice controller labels its slices), so
readiness can be flipped at will; one test goes through the sandbox's
EndpointSlice controller with a real pod. Each test has its own namespace.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox import components, netns
from sandbox.dns import probe
from tests.e2e.kovn_env import KovnEnv, kovn_sandbox, wait_until

pytestmark = [pytest.mark.root, pytest.mark.slow]

ZONE = "cluster.local"
#: How soon a change in the API must show in the answers.
PROMPT = 1.0


@pytest.fixture(scope="module")
def kovn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KovnEnv]:
    state = tmp_path_factory.mktemp("dns") / "state"
    with kovn_sandbox(state) as env:
        yield env
    # down left no dnsmasq (nor feeder) behind
    left = subprocess.run(["pgrep", "-af", str(state)], capture_output=True, text=True).stdout
    assert not left.strip(), left


@pytest.fixture(scope="module")
def client(kovn: KovnEnv) -> tuple[str, str, str]:
    """(pod netns, its node's DNS address, the other node's DNS address)."""
    kovn.namespace("dns-client")
    n1, n2 = kovn.nodes[:2]
    kovn.pod("dns-client", "c", n1)
    kovn.wait_ready("dns-client", "c")
    addrs = {n: a.split("/")[0] for n, a in components.node_addresses(kovn.lay).items()}
    return kovn.pod_netns("dns-client", "c"), addrs[n1], addrs[n2]


def _ns(kovn: KovnEnv, name: str) -> str:
    kovn.namespace(name)
    return name


def _service(ns: str, name: str, ports: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"ports": ports, **spec},
    }


def _slice(
    ns: str, svc: str, endpoints: list[dict[str, Any]], ports: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{svc}-abcde",
            "namespace": ns,
            "labels": {
                "kubernetes.io/service-name": svc,
                "endpointslice.kubernetes.io/managed-by": "e2e.dns.kovn.io",
            },
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports,
    }


def _ep(ip: str, ready: bool = True, hostname: str | None = None) -> dict[str, Any]:
    ep: dict[str, Any] = {"addresses": [ip], "conditions": {"ready": ready}}
    if hostname:
        ep["hostname"] = hostname
    return ep


def _until(what: str, predicate: Any, timeout: float = PROMPT) -> float:
    """Seconds until predicate() holds (fails after timeout): answers change on a push."""
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.02)
    return time.monotonic() - t0


def test_kube_dns_service_and_slice_name_each_node(kovn: KovnEnv) -> None:
    svc = json.loads(kovn.kubectl("get", "svc", "-n", "kube-system", "kube-dns", "-o", "json"))
    assert svc["spec"]["clusterIP"] == "10.96.0.10"
    ports = {(p["name"], p["protocol"], p["port"]) for p in svc["spec"]["ports"]}
    assert ports == {("dns", "UDP", 53), ("dns-tcp", "TCP", 53)}
    slices = json.loads(
        kovn.kubectl(
            "get",
            "endpointslices",
            "-n",
            "kube-system",
            "-l",
            "kubernetes.io/service-name=kube-dns",
            "-o",
            "json",
        )
    )["items"]
    assert len(slices) == 1
    got = {
        e["nodeName"]: (e["addresses"], e["conditions"]["ready"]) for e in slices[0]["endpoints"]
    }
    joins = components.node_addresses(kovn.lay)
    assert got == {n: ([a.split("/")[0]], True) for n, a in joins.items()}
    assert components.dns_health(kovn.lay) == {n: "SERVING" for n in kovn.nodes}
    out = subprocess.run(
        [".venv/bin/kovn", "sandbox", "status", "--name", kovn.lay.name,
         "--state-dir", kovn.lay.state_dir],
        capture_output=True, text=True, cwd=str(components.ROOT), check=True,
    ).stdout  # fmt: skip
    assert re.search(r"cluster dns .*kube-dns 10\.96\.0\.10", out), out


def test_service_name_answers_its_cluster_ip(kovn: KovnEnv, client: tuple[str, str, str]) -> None:
    pod_ns, dns, other = client
    ns = _ns(kovn, "dns-web")
    kovn.apply(_service(ns, "web", [{"name": "http", "port": 80, "protocol": "TCP"}]))
    ip = json.loads(kovn.kubectl("get", "svc", "-n", ns, "web", "-o", "json"))["spec"]["clusterIP"]
    name = f"web.{ns}.svc.{ZONE}"
    _until("web answers", lambda: probe.dig(pod_ns, dns, name).data("A") == [ip])
    # nslookup, as a user would type it in a pod; over TCP; and at the other node.
    res = netns.run(pod_ns, ["nslookup", name, dns], check=False)
    assert res.returncode == 0 and f"Address: {ip}" in res.stdout, res.stdout
    assert probe.dig(pod_ns, dns, name, tcp=True).data("A") == [ip]
    assert probe.dig(pod_ns, other, name).data("A") == [ip]
    ans = probe.dig(pod_ns, dns, name)
    assert ans.ttls == [5]  # CoreDNS's default TTL
    assert probe.dig(pod_ns, dns, name, "AAAA").status == "NOERROR"  # the name exists, no AAAA
    assert probe.dig(pod_ns, dns, ip, "PTR").data("PTR") == [f"{name}."]


def test_srv_for_a_named_port(kovn: KovnEnv, client: tuple[str, str, str]) -> None:
    pod_ns, dns, _ = client
    ns = _ns(kovn, "dns-srv")
    ports = [
        {"name": "http", "port": 80, "protocol": "TCP"},
        {"name": "syslog", "port": 514, "protocol": "UDP"},
    ]
    kovn.apply(_service(ns, "api", ports))
    fqdn = f"api.{ns}.svc.{ZONE}"
    _until(
        "SRV answers",
        lambda: (
            probe.dig(pod_ns, dns, f"_http._tcp.{fqdn}", "SRV").data("SRV") == [f"0 100 80 {fqdn}."]
        ),
    )
    assert probe.dig(pod_ns, dns, f"_syslog._udp.{fqdn}", "SRV").data("SRV") == [
        f"0 100 514 {fqdn}."
    ]
    assert probe.dig(pod_ns, dns, f"_http._udp.{fqdn}", "SRV").status == "NXDOMAIN"


def test_headless_answers_ready_endpoints_and_drops_one_not_ready(
    kovn: KovnEnv, client: tuple[str, str, str]
) -> None:
    pod_ns, dns, _ = client
    ns = _ns(kovn, "dns-headless")
    kovn.apply(
        _service(ns, "db", [{"name": "pg", "port": 5432, "protocol": "TCP"}], clusterIP="None")
    )
    fqdn = f"db.{ns}.svc.{ZONE}"
    ports = [{"name": "pg", "port": 5432, "protocol": "TCP"}]
    eps = [_ep("10.16.9.1", hostname="db-0"), _ep("10.16.9.2"), _ep("10.16.9.3", ready=False)]
    kovn.apply(_slice(ns, "db", eps, ports))
    _until(
        "ready endpoints answer",
        lambda: probe.dig(pod_ns, dns, fqdn).data("A") == ["10.16.9.1", "10.16.9.2"],
    )
    assert probe.dig(pod_ns, dns, f"db-0.{fqdn}").data("A") == ["10.16.9.1"]
    assert probe.dig(pod_ns, dns, f"10-16-9-2.{fqdn}").data("A") == ["10.16.9.2"]
    assert probe.dig(pod_ns, dns, f"10-16-9-3.{fqdn}").status == "NXDOMAIN"
    assert probe.dig(pod_ns, dns, f"_pg._tcp.{fqdn}", "SRV").data("SRV") == [
        f"0 50 5432 10-16-9-2.{fqdn}.",
        f"0 50 5432 db-0.{fqdn}.",
    ]
    assert probe.dig(pod_ns, dns, "10.16.9.1", "PTR").data("PTR") == [f"db-0.{fqdn}."]

    # db-0 stops being ready: gone from the A and SRV answers within a second.
    eps[0]["conditions"]["ready"] = False
    kovn.apply(_slice(ns, "db", eps, ports))
    took = _until(
        "not-ready endpoint dropped",
        lambda: probe.dig(pod_ns, dns, fqdn).data("A") == ["10.16.9.2"],
    )
    _until(
        "SRV follows",
        lambda: (
            probe.dig(pod_ns, dns, f"_pg._tcp.{fqdn}", "SRV").data("SRV")
            == [f"0 100 5432 10-16-9-2.{fqdn}."]
        ),
    )
    assert took < PROMPT
    # and none ready at all: the name is gone (NXDOMAIN, as the specification says)
    kovn.apply(_slice(ns, "db", [_ep("10.16.9.2", ready=False)], ports))
    _until("no ready endpoint", lambda: probe.dig(pod_ns, dns, fqdn).status == "NXDOMAIN")


def test_headless_service_of_a_pod_through_the_endpointslice_controller(
    kovn: KovnEnv, client: tuple[str, str, str]
) -> None:
    pod_ns, dns, _ = client
    ns = _ns(kovn, "dns-pods")
    pod = kovn.pod_obj(ns, "web-0", kovn.nodes[1])
    pod["metadata"]["labels"] = {"app": "web"}
    kovn.apply(pod)
    kovn.apply(
        _service(
            ns, "web", [{"name": "http", "port": 80}], clusterIP="None", selector={"app": "web"}
        )
    )
    kovn.wait_ready(ns, "web-0")
    ip = kovn.pod_ip(ns, "web-0")
    fqdn = f"web.{ns}.svc.{ZONE}"
    _until("the pod's IP answers", lambda: probe.dig(pod_ns, dns, fqdn).data("A") == [ip], 10.0)
    assert probe.dig(pod_ns, dns, f"_http._tcp.{fqdn}", "SRV").data("SRV") == [
        f"0 100 80 {ip.replace('.', '-')}.{fqdn}."
    ]
    kovn.delete_pods(ns, "web-0")
    _until("the pod's IP is gone", lambda: probe.dig(pod_ns, dns, fqdn).status == "NXDOMAIN", 10.0)


def test_external_name_is_a_cname(kovn: KovnEnv, client: tuple[str, str, str]) -> None:
    pod_ns, dns, _ = client
    ns = _ns(kovn, "dns-ext")
    kovn.apply(_service(ns, "db", [], type="ExternalName", externalName="db.example.com"))
    name = f"db.{ns}.svc.{ZONE}"
    _until(
        "CNAME answers",
        lambda: probe.dig(pod_ns, dns, name).data("CNAME") == ["db.example.com."],
    )


def test_unknown_names(kovn: KovnEnv, client: tuple[str, str, str]) -> None:
    pod_ns, dns, _ = client
    assert probe.dig(pod_ns, dns, f"nope.default.svc.{ZONE}").status == "NXDOMAIN"
    assert probe.dig(pod_ns, dns, f"nope.{ZONE}", tcp=True).status == "NXDOMAIN"
    # No internet here: names outside the zone are refused at once, not left to time out.
    assert probe.dig(pod_ns, dns, "example.com").status == "REFUSED"
    assert probe.dig(pod_ns, dns, f"dns-version.{ZONE}", "TXT").data("TXT") == ['"1.1.0"']


def test_deleted_service_stops_answering(kovn: KovnEnv, client: tuple[str, str, str]) -> None:
    pod_ns, dns, _ = client
    ns = _ns(kovn, "dns-gone")
    kovn.apply(_service(ns, "tmp", [{"name": "http", "port": 80, "protocol": "TCP"}]))
    name = f"tmp.{ns}.svc.{ZONE}"
    _until("tmp answers", lambda: probe.dig(pod_ns, dns, name).status == "NOERROR")
    kovn.kubectl("delete", "svc", "-n", ns, "tmp")
    _until("A gone", lambda: probe.dig(pod_ns, dns, name).status == "NXDOMAIN")
    _until(
        "SRV gone",
        lambda: probe.dig(pod_ns, dns, f"_http._tcp.{name}", "SRV").status == "NXDOMAIN",
    )


def test_no_query_lost_while_dnsmasq_is_reconfigured(
    kovn: KovnEnv, client: tuple[str, str, str]
) -> None:
    """Each named port is an SRV line, so each Service below switches dnsmasq generations."""
    pod_ns, dns, _ = client
    ns = _ns(kovn, "dns-churn")
    kovn.apply(_service(ns, "steady", [{"port": 80, "protocol": "TCP"}]))
    steady = f"steady.{ns}.svc.{ZONE}"
    _until("steady answers", lambda: probe.dig(pod_ns, dns, steady).status == "NOERROR")
    answers: list[str] = []
    done = threading.Event()

    def ask() -> None:
        while not done.is_set():
            answers.append(probe.dig(pod_ns, dns, steady, tcp=len(answers) % 4 == 0).status)

    t = threading.Thread(target=ask)
    t.start()
    try:
        for i in range(8):
            kovn.apply(_service(ns, f"s{i}", [{"name": "p", "port": 80, "protocol": "TCP"}]))
            time.sleep(0.15)
        last = f"_p._tcp.s7.{ns}.svc.{ZONE}"
        _until("last SRV", lambda: probe.dig(pod_ns, dns, last, "SRV").status == "NOERROR", 3.0)
    finally:
        done.set()
        t.join()
    assert len(answers) > 20 and set(answers) == {"NOERROR"}, answers
    wait_until(lambda: components.dns_health(kovn.lay) == {n: "SERVING" for n in kovn.nodes})
