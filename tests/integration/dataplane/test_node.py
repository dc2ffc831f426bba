"""Node bootstrap (br-int, Open_vSwitch keys, kovn0), the node API over
grpcurl, metrics, and STATUS before the node is ready."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from sandbox import daemon, netns
from sandbox.testbed.dataplane import NODE_IP, NODE_MAC, NODE_PORT, Env
from sandbox.testbed.procs import ROOT, poll

pytestmark = [pytest.mark.root]
GRPCURL = str(Path(sys.executable).parent / "grpcurl")


def test_bootstrap_and_management_port(env: Env) -> None:
    ids = env.node.vsctl("get", "Open_vSwitch", ".", "external_ids")
    assert "system-id=kdp-node" in ids and "ovn-bridge-datapath-type=netdev" in ids
    assert env.node.vsctl("get", "Bridge", "br-int", "datapath_type") == "netdev"

    def kovn0_ready() -> bool:
        res = netns.run(env.node_ns, ["ip", "-o", "addr", "show", "kovn0"], check=False)
        return NODE_IP in res.stdout

    # kovn0 is plugged by a background task of another process: no event to await.
    poll(kovn0_ready, 15, "kovn0 plugged and up")
    assert env.node.vsctl("get", "Interface", "kovn0", "external_ids:iface-id") == NODE_PORT
    link = netns.run(env.node_ns, ["ip", "-o", "link", "show", "kovn0"]).stdout
    assert NODE_MAC in link
    routes = netns.run(env.node_ns, ["ip", "route"]).stdout
    assert "10.88.0.0/16 via 10.77.255.254 dev kovn0" in routes
    # The node reaches a pod through kovn0.
    cid, _ns, ns_path, res = env.add("node-ping")
    assert res.rc == 0, res.out
    pod_ip = res.out["ips"][0]["address"].split("/")[0]
    ping = netns.run(env.node_ns, ["ping", "-c", "1", "-W", "3", pod_ip], check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert env.cni(env.env("DEL", cid, ns_path)).rc == 0


def _grpcurl(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GRPCURL, "-plaintext", "-unix", *args[:-1], str(env.dp_sock), args[-1]],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


def test_node_api_with_grpcurl(env: Env) -> None:
    cid, _ns, ns_path, res = env.add("api-a")
    assert res.rc == 0, res.out
    listed = _grpcurl(env, "kovn.dataplane.v1.Dataplane/ListAttachments")
    assert listed.returncode == 0, listed.stderr
    found = [a for a in json.loads(listed.stdout).get("attachments", [])
             if a.get("container_id") == cid]  # fmt: skip
    assert len(found) == 1 and found[0]["name"] == "api-a" and found[0]["ovn_installed"]
    got = _grpcurl(env, "-d", json.dumps({"container_id": cid}),
                   "kovn.dataplane.v1.Dataplane/GetAttachment")  # fmt: skip
    assert got.returncode == 0 and json.loads(got.stdout)["logical_port"] == "default.api-a"
    missing = _grpcurl(env, "-d", '{"container_id": "nope"}',
                       "kovn.dataplane.v1.Dataplane/GetAttachment")  # fmt: skip
    assert missing.returncode != 0 and "NotFound" in missing.stderr
    empty = _grpcurl(env, "-d", "{}", "kovn.dataplane.v1.Dataplane/GetAttachment")
    assert "InvalidArgument" in empty.stderr and "container_id" in empty.stderr
    health = _grpcurl(env, "grpc.health.v1.Health/Check")
    assert '"SERVING"' in health.stdout
    assert env.cni(env.env("DEL", cid, ns_path)).rc == 0


def test_status_not_ready_while_starting(tmp_path: Path) -> None:
    """A dataplane still waiting for OVSDB answers STATUS with 50."""
    sock = Path("/tmp") / f"kdp-st{os.getpid()}.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.dataplane.main", "--socket", str(sock),
         "--ovsdb", f"unix:{tmp_path / 'no-ovsdb.sock'}", "--ovsdb-timeout", "60",
         "--node-name", "kdp-x"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    conf = {"cniVersion": "1.1.0", "name": "kovn", "type": "kovn-cni", "socket": str(sock)}
    replies: list[dict[str, object]] = []

    def status_answered() -> bool:
        out = subprocess.run(
            [str(Path(sys.executable).parent / "kovn-cni")], input=json.dumps(conf).encode(),
            env={"CNI_COMMAND": "STATUS"}, capture_output=True, timeout=30, check=False,
        )  # fmt: skip
        replies.append(json.loads(out.stdout))
        # Until the server listens the shim itself says "unreachable" (also 50).
        return "unreachable" not in str(replies[-1]["msg"])

    try:
        poll(status_answered, 15, "the dataplane to answer STATUS")
        assert replies[-1]["code"] == 50 and "starting" in str(replies[-1]["msg"])
        method = "kovn.dataplane.v1.Dataplane/ListAttachments"
        listed = subprocess.run(
            [GRPCURL, "-plaintext", "-unix", str(sock), method],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert "Unavailable" in listed.stderr and "starting" in listed.stderr
        health = subprocess.run(
            [GRPCURL, "-plaintext", "-unix", str(sock), "grpc.health.v1.Health/Check"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert "NOT_SERVING" in health.stdout
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        sock.unlink(missing_ok=True)


def test_bootstrap_of_an_empty_ovsdb(tmp_path: Path) -> None:
    """A fresh node: the dataplane writes br-int and every key ovn-controller
    reads, then answers STATUS 0. (Run in its own netns: reconciliation
    looks at that namespace's links.)"""
    run = Path(tempfile.mkdtemp(prefix="kdp-bs-"))
    ns = f"kdp-bs{os.getpid() % 10000}"
    subprocess.run(["ovsdb-tool", "create", str(run / "conf.db"),
                    "/usr/share/openvswitch/vswitch.ovsschema"], check=True)  # fmt: skip
    remote = f"unix:{run / 'db.sock'}"
    daemon.start("ovsdb-server", [str(run / "conf.db"), f"--remote=p{remote}"], run_dir=run,
                 name="ovsdb-server")  # fmt: skip
    netns.create(ns)
    sock = run / "dp.sock"
    proc = subprocess.Popen(
        netns.command(ns, [sys.executable, "-m", "services.dataplane.main", "--socket", str(sock),
                           "--ovsdb", remote, "--node-name", "kdp-fresh",
                           "--ovn-remote", "tcp:192.0.2.1:6642", "--encap-ip", "192.0.2.7"]),
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        conf = {"cniVersion": "1.1.0", "name": "kovn", "type": "kovn-cni", "socket": str(sock)}

        def ready() -> bool:
            out = subprocess.run(
                [str(Path(sys.executable).parent / "kovn-cni")], input=json.dumps(conf).encode(),
                env={"CNI_COMMAND": "STATUS"}, capture_output=True, timeout=30, check=False,
            )  # fmt: skip
            return out.returncode == 0

        poll(ready, 15, "the dataplane to answer STATUS")
        vsctl = ["ovs-vsctl", f"--db={remote}", "--no-wait"]
        ids = subprocess.run([*vsctl, "get", "Open_vSwitch", ".", "external_ids"],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
        for item in ('system-id=kdp-fresh', 'ovn-remote="tcp:192.0.2.1:6642"',
                     'ovn-encap-ip="192.0.2.7"', "ovn-encap-type=geneve",
                     "ovn-bridge-datapath-type=netdev", 'ovn-monitor-all="true"'):  # fmt: skip
            assert item in ids, ids
        other = subprocess.run([*vsctl, "get", "Open_vSwitch", ".", "other_config"],
                               capture_output=True, text=True, check=True).stdout  # fmt: skip
        assert 'hw-offload="false"' in other and 'userspace-tso-enable="false"' in other
        br = subprocess.run([*vsctl, "get", "Bridge", "br-int", "datapath_type", "fail_mode"],
                            capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
        assert br == ["netdev", "secure"]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        netns.delete(ns)
        daemon.stop(run / "ovsdb-server.pid", "ovsdb-server")
        shutil.rmtree(run, ignore_errors=True)
