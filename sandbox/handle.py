"""A running sandbox as seen by a test or a tool: its daemons, nodes and API.

End-to-end tests get one of these from the `sandbox` fixture; it wraps the
saved layout with the objects a test needs (the OVN central to write NB
rows, each node's OvsNode, the kubeconfig, a way to run commands in a pod or
node namespace) without knowing how `up` built them.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from sandbox import cluster, netns
from sandbox.layout import Layout, NodeLayout
from sandbox.ovn import OvnCentral
from sandbox.ovs import OvsNode


@dataclass
class SandboxHandle:
    layout: Layout
    central: OvnCentral = field(init=False)
    nodes: dict[str, OvsNode] = field(init=False)

    def __post_init__(self) -> None:
        self.central = cluster.central_of(self.layout)
        self.nodes = {n.name: cluster.node_of(self.layout, n) for n in self.layout.nodes}

    @classmethod
    def open(cls, state_dir: Path) -> SandboxHandle:
        return cls(cluster.load(state_dir))

    @property
    def name(self) -> str:
        return self.layout.name

    @property
    def state_dir(self) -> Path:
        return self.layout.dir

    @property
    def kubeconfig(self) -> Path:
        return Path(self.layout.kubeconfig)

    def node_layouts(self) -> list[NodeLayout]:
        return list(self.layout.nodes)

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> str:
        """Real kubectl against the sandbox's API server; returns stdout."""
        res = subprocess.run(
            ["kubectl", f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            input=input,
            timeout=60,
        )
        if check and res.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {res.stderr.strip()}")
        return res.stdout

    def pod_netns(self, namespace: str, name: str) -> str | None:
        for rec in cluster.pod_records(self.layout):
            if rec.get("namespace") == namespace and rec.get("name") == name:
                ns = rec.get("netns")
                return str(ns) if ns else None
        return None

    def exec(
        self, namespace: str, pod: str, argv: list[str], check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run argv in the pod's network namespace (like `kovn sandbox exec`)."""
        ns = self.pod_netns(namespace, pod)
        if ns is None:
            raise LookupError(f"pod {namespace}/{pod} has no netns in sandbox {self.name}")
        return netns.run(ns, argv, check=check)

    def node_exec(
        self, node: str, argv: list[str], check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return netns.run(self.layout.node(node).netns, argv, check=check)
