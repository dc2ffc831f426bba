"""The sandbox DNS's dnsmasq configuration, DNAT rules and kube-dns objects."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from sandbox.dns.dnsmasq import NFT_TABLE, Settings, nft_rules, static_config
from sandbox.dns.feeder import kube_dns_service, kube_dns_slice
from sandbox.dns.records import build


def _config(tmp_path: Path, upstreams: tuple[str, ...] = ()) -> list[str]:
    st = Settings(zone="cluster.local", ttl=5, hosts_dir=tmp_path / "hosts", upstreams=upstreams)
    return static_config(st, "100.64.0.2", 5301, tmp_path / "d.pid", tmp_path / "d.log")


def test_static_config_is_local_only_and_listens_on_one_address(tmp_path: Path) -> None:
    lines = _config(tmp_path)
    for want in ("no-resolv", "no-hosts", "local=/cluster.local/", "bind-interfaces",
                 "listen-address=100.64.0.2", "port=5301", "local-ttl=5",
                 "txt-record=dns-version.cluster.local,1.1.0",
                 f"hostsdir={tmp_path / 'hosts'}"):  # fmt: skip
        assert want in lines
    assert not [x for x in lines if x.startswith("server=")]
    assert "server=10.0.0.53" in _config(tmp_path, ("10.0.0.53",))


@pytest.mark.skipif(shutil.which("dnsmasq") is None, reason="dnsmasq-base not installed")
def test_dnsmasq_accepts_the_whole_configuration(tmp_path: Path) -> None:
    (tmp_path / "hosts").mkdir()
    svc = {
        "metadata": {"namespace": "ns", "name": "web"},
        "spec": {"clusterIP": "10.96.0.3", "ports": [{"name": "http", "port": 80}]},
    }
    ext = {
        "metadata": {"namespace": "ns", "name": "ext"},
        "spec": {"type": "ExternalName", "externalName": "example.com"},
    }
    zone = build([svc, ext], [])
    conf = tmp_path / "d.conf"
    conf.write_text("\n".join([*_config(tmp_path), *zone.config_lines(5)]) + "\n")
    res = subprocess.run(
        ["dnsmasq", "--test", f"--conf-file={conf}"], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr


def test_nft_rules_replace_the_table_in_one_transaction() -> None:
    text = nft_rules("100.64.0.2", 5302)
    # declare (so flush cannot fail), flush, then fill: one `nft -f` transaction
    assert text.splitlines()[:2] == [f"table ip {NFT_TABLE}", f"flush table ip {NFT_TABLE}"]
    rule = "ip daddr 100.64.0.2 meta l4proto { tcp, udp } th dport 53 dnat to 100.64.0.2:5302"
    assert text.count(rule) == 2  # pods (prerouting) and the node itself (output)
    assert "hook prerouting" in text and "hook output" in text


def test_kube_dns_service_and_slice() -> None:
    svc = kube_dns_service("10.96.0.10")
    assert svc["metadata"] == {
        "name": "kube-dns",
        "namespace": "kube-system",
        "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "dnsmasq"},
    }
    assert "selector" not in svc["spec"]  # the servers are not pods
    assert {(p["name"], p["protocol"], p["port"]) for p in svc["spec"]["ports"]} == {
        ("dns", "UDP", 53),
        ("dns-tcp", "TCP", 53),
    }
    svc["metadata"]["uid"] = "u1"
    sl = kube_dns_slice(svc, {"n2": ("100.64.0.3", False), "n1": ("100.64.0.2", True)})
    labels = sl["metadata"]["labels"]
    assert labels["kubernetes.io/service-name"] == "kube-dns"
    # not the EndpointSlice controller's: it would remove a slice of a selector-less Service
    assert labels["endpointslice.kubernetes.io/managed-by"] != "endpointslice-controller.k8s.io"
    assert sl["metadata"]["ownerReferences"][0]["uid"] == "u1"
    assert [(e["nodeName"], e["addresses"], e["conditions"]["ready"]) for e in sl["endpoints"]] == [
        ("n1", ["100.64.0.2"], True),
        ("n2", ["100.64.0.3"], False),
    ]
