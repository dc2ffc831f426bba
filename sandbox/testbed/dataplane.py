"""A real node for dataplane tests and bench/cni.py: OVN central, one OVS node (ovsdb-server,
userspace ovs-vswitchd, ovn-controller) in its own netns, the controller
stand-in on a unix socket, and the dataplane service running as a process in
the node's netns, driven through the real kovn-cni executable."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox import netns
from sandbox.ovn import OvnCentral
from sandbox.ovs import OvsNode
from sandbox.testbed.fake_controller import FakeController, pod_network
from sandbox.testbed.procs import ROOT, poll
from services.api.controller.v1 import controller_pb2

VENV_BIN = Path(sys.executable).parent
KOVN_CNI = str(VENV_BIN / "kovn-cni")
SWITCH = "kdp-ls"
NODE_PORT = "node-kdp-node"
NODE_MAC = "0a:58:0a:4d:ff:01"
NODE_IP = "10.77.255.1"
NETWORK = "kovn"


@dataclass
class CniResult:
    rc: int
    out: dict[str, Any]
    raw: bytes


@dataclass
class Env:
    tmp: Path
    ovn: OvnCentral
    node: OvsNode
    node_ns: str
    ctrl: FakeController
    ctrl_sock: Path
    dp_sock: Path
    dp: subprocess.Popen[bytes] | None = None
    pods: list[str] = field(default_factory=list)
    addresses: dict[str, str] = field(default_factory=dict)
    _ips: Iterator[int] = field(default_factory=lambda: itertools.count(2))
    _ns: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    # -- dataplane process --------------------------------------------------

    def start_dataplane(self, *extra: str) -> None:
        ready = self.tmp / "dp.ready"
        ready.unlink(missing_ok=True)
        log = (self.tmp / "dp.log").open("ab")
        argv = [
            "ip", "netns", "exec", self.node_ns,
            sys.executable, "-m", "services.dataplane.main",
            "--socket", str(self.dp_sock),
            "--ovsdb", self.node.db_remote,
            "--controller", f"unix:{self.ctrl_sock}",
            "--node-name", self.node.name,
            "--ready-file", str(ready),
            "--log-format", "json",
            "--ovn-install-timeout", "10",
            "--metrics", "127.0.0.1:0",
            *extra,
        ]  # fmt: skip
        self.dp = subprocess.Popen(
            argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        try:
            poll(
                lambda: (
                    ready.exists()
                    and self.cni(self.env("STATUS", ifname=""), self.conf("1.1.0")).rc == 0
                ),
                30,
                "the dataplane to answer STATUS",
                proc=self.dp,
            )
        except (AssertionError, TimeoutError) as err:
            raise AssertionError(f"dataplane did not start ({err}):\n{self.log_tail()}") from None
        self.addresses = json.loads(ready.read_text())

    def metrics(self) -> str:
        """The dataplane's /metrics page (served inside the node's netns)."""
        url = f"http://{self.addresses['metrics']}/metrics"
        code = f"import urllib.request; print(urllib.request.urlopen({url!r}).read().decode())"
        return netns.run(self.node_ns, [sys.executable, "-c", code]).stdout

    def kill_dataplane(self, sig: int = signal.SIGKILL) -> None:
        if self.dp is not None and self.dp.poll() is None:
            self.dp.send_signal(sig)
            self.dp.wait(timeout=20)
        self.dp = None

    def log_tail(self, lines: int = 40) -> str:
        path = self.tmp / "dp.log"
        return "\n".join(path.read_text().splitlines()[-lines:]) if path.exists() else ""

    # -- pods ----------------------------------------------------------------

    def pod_netns(self) -> tuple[str, str]:
        name = f"kdp-p{os.getpid() % 1000}-{next(self._ns)}"
        netns.create(name)
        self.pods.append(name)
        return name, str(netns.path(name))

    def add_pod(
        self, name: str, *, v6: bool = False, register: bool = True, **kw: Any
    ) -> controller_pb2.PodNetwork:
        n = next(self._ips)
        ip = f"10.77.{n // 250}.{n % 250 + 2}"
        mac = f"0a:58:0a:4d:{n // 250:02x}:{n % 250 + 2:02x}"
        pn = pod_network(name, f"{ip}/16", mac, switch=SWITCH, gateway="10.77.255.254", **kw)
        addresses = f"{mac} {ip}"
        if v6:
            ip6 = f"fd77::{n:x}"
            pn.ips.append(controller_pb2.IPConfig(address=f"{ip6}/64", gateway="fd77::ffff"))
            addresses += f" {ip6}"
        self.ovn.nbctl("lsp-add", SWITCH, pn.logical_port, "--", "lsp-set-addresses",
                       pn.logical_port, addresses)  # fmt: skip
        if register:  # else GetPodNetwork blocks until the caller's deadline
            self.ctrl.add_pod(pn)
        return pn

    def conf(self, version: str = "1.0.0", **extra: Any) -> dict[str, Any]:
        return {"cniVersion": version, "name": NETWORK, "type": "kovn-cni",
                "socket": str(self.dp_sock), **extra}  # fmt: skip

    def env(self, command: str, cid: str = "", ns_path: str = "", ifname: str = "eth0",
            pod: str = "") -> dict[str, str]:  # fmt: skip
        env = {"CNI_COMMAND": command, "CNI_PATH": "/usr/lib/cni"}
        if cid:
            env["CNI_CONTAINERID"] = cid
        if ns_path:
            env["CNI_NETNS"] = ns_path
        if ifname:
            env["CNI_IFNAME"] = ifname
        if pod:
            env["CNI_ARGS"] = f"K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod}"
        return env

    def cni(self, env: dict[str, str], stdin: bytes | dict[str, Any] | None = None) -> CniResult:
        data = stdin if isinstance(stdin, bytes) else json.dumps(stdin or self.conf()).encode()
        base = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
        proc = subprocess.run([KOVN_CNI], input=data, capture_output=True, env={**base, **env},
                              timeout=60)  # fmt: skip
        try:
            out = json.loads(proc.stdout) if proc.stdout else {}
        except ValueError:
            out = {"unparsable": proc.stdout.decode(errors="replace")}
        return CniResult(proc.returncode, out, proc.stdout)

    def add(self, pod: str, **kw: Any) -> tuple[str, str, str, CniResult]:
        """Register a pod, make its netns and ADD it; returns (cid, ns name, ns path, result)."""
        self.add_pod(pod, **kw)
        ns_name, ns_path = self.pod_netns()
        cid = uuid.uuid4().hex
        return cid, ns_name, ns_path, self.cni(self.env("ADD", cid, ns_path, pod=pod))

    def ovs_ports(self) -> list[str]:
        out = self.node.vsctl("list-ports", "br-int")
        return [p for p in out.splitlines() if p.startswith("kv")]

    def node_links(self) -> list[str]:
        res = netns.run(self.node_ns, ["ip", "-o", "link", "show"])
        names = [line.split(":")[1].strip().split("@")[0] for line in res.stdout.splitlines()]
        return [n for n in names if n.startswith("kv")]

    def delete_pod_netns(self, name: str) -> None:
        if name in self.pods:
            self.pods.remove(name)
        with contextlib.suppress(Exception):
            netns.kill_all(name)
        netns.delete(name)


@contextlib.contextmanager
def node_env() -> Iterator[Env]:
    """OVN central + one OVS node in a netns + controller stand-in + dataplane."""
    tmp = Path(tempfile.mkdtemp(prefix="kdp-"))
    node_ns = f"kdp-node{os.getpid() % 10000}"
    ovn = OvnCentral(tmp / "central")
    node = OvsNode("kdp-node", tmp / "node", netns=node_ns, ovn_remote=ovn.sb_remote,
                   encap_ip="127.0.0.1")  # fmt: skip
    ctrl = FakeController()
    e = Env(tmp, ovn, node, node_ns, ctrl, tmp / "ctrl.sock", tmp / "dp.sock")
    try:
        ovn.start()
        ovn.nbctl("ls-add", SWITCH)
        netns.create(node_ns)
        node.start()
        ctrl.serve(str(e.ctrl_sock))
        # The node's join port: kovn0 on the pods' switch, so the node reaches pods.
        ovn.nbctl("lsp-add", SWITCH, NODE_PORT, "--", "lsp-set-addresses", NODE_PORT,
                  f"{NODE_MAC} {NODE_IP}")  # fmt: skip
        ctrl.add_node(controller_pb2.NodeNetwork(
            node=node.name, logical_port=NODE_PORT, mac=NODE_MAC, mtu=1400,
            ips=[controller_pb2.IPConfig(address=f"{NODE_IP}/16", gateway="10.77.255.254")],
            cluster_cidrs=["10.88.0.0/16"], join_cidrs=["10.77.0.0/16"],
        ))  # fmt: skip
        e.start_dataplane()
        yield e
    finally:
        e.kill_dataplane(signal.SIGTERM)
        ctrl.stop()
        for name in list(e.pods):
            e.delete_pod_netns(name)
        node.stop()
        with contextlib.suppress(Exception):
            netns.kill_all(node_ns)
        if netns.exists(node_ns):
            netns.delete(node_ns)
        ovn.stop()
        shutil.rmtree(tmp, ignore_errors=True)
