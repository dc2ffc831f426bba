"""A sandbox running kovn for real, and what e2e tests do with it.

`kovn_sandbox()` brings up a sandbox with kovn-cni, ipam, the controller and
a dataplane per node (sandbox.components), with a short ipam cool-down so
tests about address reuse stay short; it takes everything down again even
when the test fails. `KovnEnv` wraps the handle with the operations the
tests share: pods through the real kubectl, waits, pings and TCP from pod
namespaces, and the node/NB views used to check for leftovers.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox import cluster, components, netns
from sandbox.handle import SandboxHandle
from tests.tcp_transfer import tcp_transfer

COOLDOWN = 3.0
READY_TIMEOUT = 60.0


def e2e_name() -> str:
    return f"e2e{secrets.token_hex(3)}"


@dataclass
class KovnEnv:
    sbx: SandboxHandle

    @property
    def lay(self) -> Any:
        return self.sbx.layout

    @property
    def nodes(self) -> list[str]:
        return [n.name for n in self.sbx.layout.nodes]

    # -- API -------------------------------------------------------------------------

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        return self.sbx.kubectl(*args, input=input, check=check)

    def apply(self, *objs: dict[str, Any]) -> None:
        doc = {"apiVersion": "v1", "kind": "List", "items": list(objs)}
        self.kubectl("apply", "--validate=false", "-f", "-", input=json.dumps(doc))

    def namespace(self, name: str) -> None:
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    def subnet(self, name: str, cidr: str, namespaces: list[str]) -> None:
        self.apply(
            {
                "apiVersion": "kovn.io/v1",
                "kind": "Subnet",
                "metadata": {"name": name},
                "spec": {"cidrBlock": cidr, "namespaces": namespaces},
            }
        )

    @staticmethod
    def pod_obj(
        ns: str, name: str, node: str, annotations: dict[str, str] | None = None
    ) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "annotations": annotations or {}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
        }

    def pod(self, ns: str, name: str, node: str, annotations: dict[str, str] | None = None) -> None:
        self.apply(self.pod_obj(ns, name, node, annotations))

    def wait_ready(self, ns: str, *names: str, timeout: float = READY_TIMEOUT) -> None:
        self.kubectl(
            "wait", "-n", ns, "--for=condition=Ready", *(f"pod/{n}" for n in names),
            f"--timeout={int(timeout)}s",
        )  # fmt: skip

    def get_pod(self, ns: str, name: str) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self.kubectl("get", "pod", "-n", ns, name, "-o", "json"))
        return out

    def pods(self, ns: str | None = None) -> list[dict[str, Any]]:
        scope = ["-n", ns] if ns else ["-A"]
        items: list[dict[str, Any]] = json.loads(self.kubectl("get", "pods", *scope, "-o", "json"))[
            "items"
        ]
        return items

    def pod_ip(self, ns: str, name: str) -> str:
        ip: str = self.get_pod(ns, name).get("status", {}).get("podIP", "")
        return ip

    def delete_pods(self, ns: str, *names: str, wait: bool = True) -> None:
        self.kubectl(
            "delete", "pod", "-n", ns, *names, f"--wait={'true' if wait else 'false'}",
            "--timeout=60s",
        )  # fmt: skip

    def events(self, ns: str, name: str) -> list[dict[str, Any]]:
        items = json.loads(self.kubectl("get", "events", "-n", ns, "-o", "json"))["items"]
        return [e for e in items if (e.get("involvedObject") or {}).get("name") == name]

    # -- packets ---------------------------------------------------------------------

    def pod_netns(self, ns: str, name: str) -> str:
        found = self.sbx.pod_netns(ns, name)
        if not found:
            raise LookupError(f"pod {ns}/{name} has no netns")
        return found

    def ping(self, src_netns: str, ip: str, count: int = 1, wait: float = 2.0) -> bool:
        res = netns.run(
            src_netns,
            ["ping", "-c", str(count), "-W", str(wait), "-i", "0.2", "-q", ip],
            check=False,
        )
        return res.returncode == 0

    def tcp_bytes(self, server_netns: str, client_netns: str, server_ip: str) -> int:
        """Bytes the server counted from a 2 MB TCP send (0 on failure)."""
        return tcp_transfer(server_netns, client_netns, server_ip, 2_000_000)[0]

    # -- what the nodes and the NB hold -------------------------------------------------

    def node_ports(self, node: str) -> dict[str, str]:
        """iface-id -> host interface name of every pod attachment in the node's OVSDB."""
        out = self.sbx.nodes[node].vsctl(
            "--format=json", "--columns=name,external_ids", "find", "Interface",
            "external_ids:kovn-container-id!=x",
        )  # fmt: skip
        ports: dict[str, str] = {}
        for name, ids in json.loads(out)["data"]:
            ext = dict(ids[1])
            if "kovn-container-id" in ext:
                ports[ext.get("iface-id", "")] = name
        return ports

    def nb_pod_ports(self) -> dict[str, str]:
        """Logical switch port name -> addresses, for kovn's pod ports."""
        out = self.sbx.central.nbctl(
            "--format=json", "--columns=name,addresses,external_ids", "list", "Logical_Switch_Port"
        )
        ports: dict[str, str] = {}
        for name, addrs, ids in json.loads(out)["data"]:
            ext = dict(ids[1])
            if ext.get("pod") or ext.get("kovn-pod"):
                a = addrs if isinstance(addrs, str) else " ".join(v for v in addrs[1])
                ports[name] = a
        return ports


class ContinuousPing:
    """`ping -i 0.05` from a pod netns for the length of a with-block.

    Lost packets are the sequence numbers never answered up to the last one
    answered: the few still in flight when the ping is stopped do not count.
    """

    def __init__(self, src_netns: str, ip: str) -> None:
        self.proc = subprocess.Popen(
            netns.command(src_netns, ["ping", "-n", "-i", "0.05", "-W", "1", ip]),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def stop(self) -> tuple[int, list[int]]:
        """(answered, unanswered sequence numbers)."""
        self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=10)
        seqs = {int(m) for m in re.findall(r"icmp_seq=(\d+) ttl=", out)}
        if not seqs:
            return 0, []
        return len(seqs), sorted(set(range(min(seqs), max(seqs) + 1)) - seqs)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def kovn_sandbox(state_dir: Path, nodes: int = 2, cooldown: float = COOLDOWN) -> Iterator[KovnEnv]:
    lay = None
    try:
        # With cni "kovn", up starts ipam, the controller and the dataplanes.
        lay = cluster.up(e2e_name(), state_dir, nodes, "kovn", cooldown=cooldown)
        yield KovnEnv(SandboxHandle(lay))
    finally:
        if lay is not None:
            components.stop(lay)
        cluster.down(state_dir, keep_logs=True)


def wait_until(predicate: Any, timeout: float = 30.0, what: str = "condition") -> None:
    """State in another process (API objects, OVSDB rows): poll with a deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached in {timeout}s")
        time.sleep(0.1)
