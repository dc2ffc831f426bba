"""Malformed CNI requests get the spec's codes and named fields; the
dataplane keeps serving afterwards. Also GC and STATUS edge cases."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from sandbox.testbed.dataplane import Env

pytestmark = [pytest.mark.root]

CID = "0123456789abcdef"
NS = "/var/run/netns/kdp-none"


def _cases(env: Env) -> list[tuple[str, dict[str, str], bytes, int, str]]:
    good = json.dumps(env.conf()).encode()

    def conf(**kw: Any) -> bytes:
        return json.dumps({**env.conf(), **kw}).encode()

    add = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": CID, "CNI_NETNS": NS, "CNI_IFNAME": "eth0",
           "CNI_ARGS": "K8S_POD_NAME=x"}  # fmt: skip

    def without(key: str) -> dict[str, str]:
        return {k: v for k, v in add.items() if k != key}

    return [
        ("no command", without("CNI_COMMAND"), good, 4, "CNI_COMMAND"),
        ("bad command", {**add, "CNI_COMMAND": "FROB"}, good, 4, "CNI_COMMAND"),
        ("no container id", without("CNI_CONTAINERID"), good, 4, "CNI_CONTAINERID"),
        ("bad container id", {**add, "CNI_CONTAINERID": "../etc;rm"}, good, 4, "CNI_CONTAINERID"),
        ("no netns", without("CNI_NETNS"), good, 4, "CNI_NETNS"),
        ("relative netns", {**add, "CNI_NETNS": "netns/x"}, good, 4, "CNI_NETNS"),
        ("no ifname", without("CNI_IFNAME"), good, 4, "CNI_IFNAME"),
        ("long ifname", {**add, "CNI_IFNAME": "x" * 16}, good, 4, "CNI_IFNAME"),
        ("bad CNI_ARGS", {**add, "CNI_ARGS": "novalue"}, good, 4, "CNI_ARGS"),
        ("no pod name", {**add, "CNI_ARGS": "K8S_POD_NAMESPACE=a"}, good, 4, "K8S_POD_NAME"),
        ("bad json", add, b'{"cniVersion": ', 6, "JSON"),
        ("not utf-8", add, b"\xff\xfe{}", 6, "JSON"),
        ("json array", add, b"[1, 2]", 7, "object"),
        ("no version", add, json.dumps({"name": "kovn", "type": "kovn-cni",
                                        "socket": str(env.dp_sock)}).encode(), 7, "cniVersion"),
        ("unknown version", add, conf(cniVersion="9.9.9"), 1, "cniVersion"),
        ("no name", add, conf(name=""), 7, "name"),
        ("status on 1.0.0", {"CNI_COMMAND": "STATUS"}, good, 1, "1.1.0"),
        ("netns missing", add, good, 103, NS),
        ("netns not a netns", {**add, "CNI_NETNS": "/etc/hostname"}, good, 103,
         "not a network namespace"),
    ]  # fmt: skip


def test_malformed_requests_get_the_right_codes(env: Env) -> None:
    for label, cni_env, stdin, code, word in _cases(env):
        res = env.cni(cni_env, stdin)
        assert res.rc == 1, label
        assert res.out.get("code") == code, (label, res.out)
        assert word in res.out["msg"], (label, res.out)
    # A huge stdin is refused by the shim without sending it.
    huge = json.dumps({**env.conf(), "pad": "x" * (2 << 20)}).encode()
    res = env.cni(env.env("ADD", CID, NS, pod="x"), huge)
    assert res.rc == 1 and res.out["code"] == 7 and "stdin" in res.out["msg"]
    # ...and the dataplane still serves.
    assert env.dp is not None and env.dp.poll() is None
    assert env.cni(env.env("STATUS", ifname=""), env.conf("1.1.0")).rc == 0


def test_unreachable_dataplane_is_try_again(env: Env, tmp_path: Any) -> None:
    conf = {**env.conf(), "socket": str(tmp_path / "nothing.sock")}
    res = env.cni(env.env("ADD", CID, NS, pod="x"), conf)
    assert res.rc == 1 and res.out["code"] == 11 and "unreachable" in res.out["msg"]
    status = env.cni(env.env("STATUS", ifname=""), {**conf, "cniVersion": "1.1.0"})
    assert status.rc == 1 and status.out["code"] == 50


def test_version_is_answered_locally(env: Env, tmp_path: Any) -> None:
    conf = {**env.conf("0.4.0"), "socket": str(tmp_path / "nothing.sock")}
    res = env.cni({"CNI_COMMAND": "VERSION"}, conf)
    assert res.rc == 0
    assert res.out == {"cniVersion": "0.4.0", "supportedVersions": ["0.4.0", "1.0.0", "1.1.0"]}


def test_gc_removes_attachments_not_listed(env: Env) -> None:
    keep_cid, _k_ns, keep_path, keep = env.add("gc-keep")
    drop_cid, _d_ns, drop_path, drop = env.add("gc-drop")
    assert keep.rc == 0 and drop.rc == 0
    gc_conf = env.conf("1.1.0", **{"cni.dev/valid-attachments": [
        {"containerID": keep_cid, "ifname": "eth0"}]})  # fmt: skip
    # Every other test's attachments are gone by now; GC sees only these two.
    res = env.cni(env.env("GC", ifname=""), gc_conf)
    assert res.rc == 0, res.out
    ports = env.ovs_ports()
    assert keep.out["interfaces"][0]["name"] in ports
    assert drop.out["interfaces"][0]["name"] not in ports
    assert drop.out["interfaces"][0]["name"] not in env.node_links()
    # The older key name works too.
    res = env.cni(env.env("GC", ifname=""), env.conf("1.1.0", **{"cni.dev/attachments": []}))
    assert res.rc == 0 and keep.out["interfaces"][0]["name"] not in env.ovs_ports()
    for cid, path in ((keep_cid, keep_path), (drop_cid, drop_path)):
        assert env.cni(env.env("DEL", cid, path)).rc == 0


def test_results_follow_the_requested_version(env: Env) -> None:
    for version in ("0.4.0", "1.1.0"):
        pod = f"ver-{version.replace('.', '')}"
        env.add_pod(pod)
        _ns_name, ns_path = env.pod_netns()
        cid = uuid.uuid4().hex
        res = env.cni(env.env("ADD", cid, ns_path, pod=pod), env.conf(version))
        assert res.rc == 0, res.out
        assert res.out["cniVersion"] == version
        if version == "0.4.0":
            assert res.out["ips"][0]["version"] == "4"
        else:
            assert res.out["interfaces"][1]["mtu"] == 1400
            assert "version" not in res.out["ips"][0]
        assert env.cni(env.env("DEL", cid, ns_path), env.conf(version)).rc == 0
