"""Names, addresses and paths of one sandbox, and its state file.

Everything a sandbox creates outside its state directory (network
namespaces, root-namespace links, processes) is named here from the sandbox
name, and written to `state.json` before it is created. `down` reads that
file, so it can undo a half-finished `up` or a crashed sandbox, and several
sandboxes with different names never share a name.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import re
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_ROOT = Path("/var/lib/kovn/sandbox")
STATE_FILE = "state.json"
# Sandbox names become parts of netns names and Kubernetes node names.
NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
MAX_NODES = 50
IFNAME_MAX = 15


class LayoutError(ValueError):
    """Bad sandbox parameters; the message names the field and value."""


def check_name(name: str) -> None:
    if not NAME_RE.match(name):
        raise LayoutError(
            f"invalid sandbox name {name!r}: 1-32 lowercase letters, digits or '-', "
            "starting and ending with a letter or digit"
        )


def link_prefix(name: str) -> str:
    """Short prefix for root-namespace link names (IFNAMSIZ is 16 with the NUL)."""
    # "<prefix>-n<i>" must fit 15 characters for up to MAX_NODES nodes.
    if len(name) <= 10:
        return name
    return "k" + hashlib.sha1(name.encode()).hexdigest()[:7]


def underlay_subnet(name: str) -> ipaddress.IPv4Network:
    """A /24 in 172.31.0.0/16 per sandbox, derived from its name.

    It lives inside the sandbox's namespaces; when something in the root
    namespace already routes the derived /24 (e.g. another sandbox whose
    services sit on its underlay), the next free one is taken instead.
    """
    start = int(hashlib.sha1(name.encode()).hexdigest(), 16) % 256
    routed = _root_routes()
    for i in range(256):
        net = ipaddress.IPv4Network(f"172.31.{(start + i) % 256}.0/24")
        if not any(net.overlaps(r) for r in routed):
            return net
    raise LayoutError("no free /24 left in 172.31.0.0/16 for the sandbox underlay")


def _root_routes() -> list[ipaddress.IPv4Network]:
    res = subprocess.run(["ip", "-4", "-o", "route", "show"], capture_output=True, text=True)
    out = []
    for line in res.stdout.splitlines():
        words = line.split()
        if words and words[0] != "default":
            with contextlib.suppress(ValueError):
                out.append(ipaddress.IPv4Network(words[0], strict=False))
    return out


@dataclass
class NodeLayout:
    name: str  # Kubernetes node name == OVN chassis name == netns name
    index: int
    netns: str
    root_link: str  # veth end in the root namespace, on the underlay bridge
    underlay_ip: str
    pod_cidr: str


@dataclass
class Layout:
    """The plan of one sandbox: everything `up` creates and `down` removes."""

    name: str
    state_dir: str
    cni: str = "bridge"
    prefix: str = ""
    subnet: str = ""
    bridge: str = ""  # root-ns Linux bridge standing for the physical network
    central_netns: str = ""
    central_link: str = ""
    central_ip: str = ""
    external_netns: str = ""
    external_link: str = ""
    external_ip: str = ""
    pod_netns_prefix: str = ""
    nodes: list[NodeLayout] = field(default_factory=list)
    kubeconfig: str = ""
    api_url: str = ""

    @classmethod
    def plan(cls, name: str, state_dir: Path, nodes: int, cni: str = "bridge") -> Layout:
        check_name(name)
        if not 1 <= nodes <= MAX_NODES:
            raise LayoutError(f"invalid --nodes {nodes}: between 1 and {MAX_NODES}")
        if cni not in ("bridge", "kovn"):
            raise LayoutError(f"invalid --cni {cni!r}: bridge or kovn")
        p = link_prefix(name)
        net = underlay_subnet(name)
        hosts = list(net.hosts())
        lay = cls(
            name=name,
            state_dir=str(state_dir),
            cni=cni,
            prefix=p,
            subnet=str(net),
            bridge=f"{p}-br",
            central_netns=f"{name}-central",
            central_link=f"{p}-c",
            central_ip=str(hosts[1]),
            external_netns=f"{name}-ext",
            external_link=f"{p}-e",
            external_ip=str(hosts[-1]),
            pod_netns_prefix=f"{name}-pod-",
        )
        for i in range(1, nodes + 1):
            node = f"{name}-node{i}"
            lay.nodes.append(
                NodeLayout(
                    name=node,
                    index=i,
                    netns=node,
                    root_link=f"{p}-n{i}",
                    underlay_ip=str(hosts[9 + i]),
                    pod_cidr=f"10.244.{i}.0/24",
                )
            )
        for link in lay.root_links():
            if len(link) > IFNAME_MAX:
                raise LayoutError(f"link name {link!r} longer than {IFNAME_MAX}")
        return lay

    # -- paths --------------------------------------------------------------

    @property
    def dir(self) -> Path:
        return Path(self.state_dir)

    @property
    def central_dir(self) -> Path:
        return self.dir / "central"

    def node_dir(self, node: str) -> Path:
        return self.dir / "nodes" / node

    def ovs_dir(self, node: str) -> Path:
        return self.node_dir(node) / "ovs"

    def cni_conf_dir(self, node: str) -> Path:
        return self.node_dir(node) / "cni" / "net.d"

    def cni_bin_dir(self, node: str) -> Path:
        return self.node_dir(node) / "cni" / "bin"

    def cni_cache_dir(self, node: str) -> Path:
        return self.node_dir(node) / "cni" / "results"

    def dataplane_socket(self, node: str) -> Path:
        """Where the node's kovn dataplane service listens (kovn-cni's conflist names it)."""
        return self.node_dir(node) / "dataplane.sock"

    def pods_dir(self, node: str) -> Path:
        """One JSON record per pod sandbox (netns, container id), written before creating."""
        return self.node_dir(node) / "pods"

    @property
    def kubeapi_dir(self) -> Path:
        return self.dir / "kubeapi"

    def node(self, name: str) -> NodeLayout:
        for n in self.nodes:
            if n.name == name:
                return n
        raise LayoutError(f"unknown node {name!r} in sandbox {self.name}")

    def root_links(self) -> list[str]:
        return [
            self.bridge,
            self.central_link,
            self.external_link,
            *(n.root_link for n in self.nodes),
        ]

    def all_netns(self) -> list[str]:
        return [self.central_netns, self.external_netns, *(n.netns for n in self.nodes)]

    # -- persistence --------------------------------------------------------

    def save(self) -> None:
        write_atomic(self.dir / STATE_FILE, json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, state_dir: Path) -> Layout:
        path = Path(state_dir) / STATE_FILE
        try:
            raw: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            raise
        except (OSError, ValueError) as e:
            raise LayoutError(f"unreadable sandbox state {path}: {e}") from e
        nodes = [NodeLayout(**n) for n in raw.pop("nodes", [])]
        return cls(**raw, nodes=nodes)


def write_atomic(path: Path, text: str) -> None:
    """Write via a temp file and rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def default_state_dir(name: str) -> Path:
    return DEFAULT_ROOT / name
