"""Run kovn's own services in a sandbox: ipam, the controller, one dataplane per node.

The rest of the sandbox (underlay, OVN central, OVS nodes, kube API, kubelets)
stands in for a cluster; this module runs the product on it the way a real
deployment does. The root namespace's end of the underlay bridge gets an
address (the "control-plane host", 172.31.k.1) where ipam and the controller
listen, so each node's dataplane, running inside that node's namespace,
reaches the controller over the underlay like a real node would. Every
process has a pidfile and a log under the state dir (`kovn/`), so `down`
stops them from the state dir alone and `status` can ask each one for its
gRPC health.

Once the nodes are bootstrapped, cluster DNS starts too (`sandbox/dns`: a
feeder and a dnsmasq per node on its kovn0 address behind the
`kube-system/kube-dns` Service); it is not a gRPC service, so `health()`
leaves it out and `dns_health()` asks each node's server instead.

Settings that must survive a restart of one component (the ports the
dataplanes dial, the ipam cool-down) live in `kovn/settings.json`, written
before anything starts.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import structlog

from sandbox import daemon, netns
from sandbox.layout import Layout, NodeLayout, write_atomic

log = structlog.get_logger(__name__)

ROOT = Path(__file__).resolve().parent.parent
CRDS = ROOT / "manifests" / "crds"
READY_TIMEOUT = 30.0
NODE_READY_TIMEOUT = 30.0
NB_PORT = 6641
#: A sandbox is for trying things: addresses come back after seconds, not 30 s.
DEFAULT_COOLDOWN = 5.0
COOLDOWN_ENV = "KOVN_SANDBOX_COOLDOWN"
IPAM = "ipam"
CONTROLLER = "controller"
#: Cluster DNS (sandbox/dns): a feeder and a dnsmasq per node; not a gRPC service.
DNS = "dns"


class ComponentError(RuntimeError):
    """A kovn component did not start or stop; the message carries its log tail."""


@dataclass
class Settings:
    """What every (re)start of a component must agree on."""

    control_ip: str
    prefixlen: int
    ipam_port: int
    controller_port: int
    cooldown_seconds: float
    default_subnet_cidr: str = "10.16.0.0/16"
    join_cidr: str = "100.64.0.0/16"

    @classmethod
    def path(cls, lay: Layout) -> Path:
        return kovn_dir(lay) / "settings.json"

    def save(self, lay: Layout) -> None:
        write_atomic(self.path(lay), json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, lay: Layout) -> Settings:
        try:
            raw = json.loads(cls.path(lay).read_text())
        except FileNotFoundError:
            raise ComponentError(f"sandbox {lay.name} runs no kovn services") from None
        return cls(**raw)

    @property
    def ipam_target(self) -> str:
        return f"{self.control_ip}:{self.ipam_port}"

    @property
    def controller_target(self) -> str:
        return f"{self.control_ip}:{self.controller_port}"


# -- paths -------------------------------------------------------------------------


def kovn_dir(lay: Layout) -> Path:
    return lay.dir / "kovn"


def dataplane_name(node: NodeLayout) -> str:
    return f"dataplane-{node.name}"


def _pidfile(lay: Layout, name: str) -> Path:
    return kovn_dir(lay) / f"{name}.pid"


def log_file(lay: Layout, name: str) -> Path:
    return kovn_dir(lay) / f"{name}.log"


def _ready_file(lay: Layout, name: str) -> Path:
    return kovn_dir(lay) / f"{name}.ready"


def ipam_socket(lay: Layout) -> Path:
    return kovn_dir(lay) / "ipam.sock"


def component_names(lay: Layout) -> list[str]:
    return [IPAM, CONTROLLER, *(dataplane_name(n) for n in lay.nodes)]


# -- the control-plane host address ------------------------------------------------


def control_ip(lay: Layout) -> str:
    """The first host address of the underlay: the root namespace's seat on it."""
    return str(next(ipaddress.IPv4Network(lay.subnet).hosts()))


def _clashing_route(lay: Layout) -> str:
    """A root-namespace route into this sandbox's underlay through another link."""
    res = subprocess.run(
        ["ip", "-4", "-o", "route", "show", "match", control_ip(lay)],
        capture_output=True,
        text=True,
    )
    net = ipaddress.IPv4Network(lay.subnet)
    for line in res.stdout.splitlines():
        words = line.split()
        if not words or words[0] == "default":
            continue
        with contextlib.suppress(ValueError):
            if ipaddress.IPv4Network(words[0], strict=False).overlaps(net) and (
                f"dev {lay.bridge} " not in line + " "
            ):
                return line
    return ""


def add_control_address(lay: Layout) -> None:
    """Give the underlay bridge 172.31.k.1 so root-namespace services sit on the underlay."""
    clash = _clashing_route(lay)
    if clash:
        raise ComponentError(
            f"underlay {lay.subnet} of sandbox {lay.name} is already routed elsewhere "
            f"({clash}); another sandbox's name hashes to the same subnet: pick another --name"
        )
    plen = lay.subnet.split("/")[1]
    subprocess.run(
        ["ip", "addr", "replace", f"{control_ip(lay)}/{plen}", "dev", lay.bridge],
        check=True,
        capture_output=True,
    )


# -- processes by pidfile ----------------------------------------------------------


def _marker(lay: Layout, name: str) -> str:
    # The ready file's path is unique per sandbox and component and is on the
    # command line: a recycled pid running something else never matches.
    return str(_ready_file(lay, name))


def pid_of(lay: Layout, name: str) -> int | None:
    return daemon.read_pid(_pidfile(lay, name), marker=_marker(lay, name))


def _spawn(lay: Layout, name: str, argv: list[str], ns: str | None = None) -> int:
    kovn_dir(lay).mkdir(parents=True, exist_ok=True)
    with open(log_file(lay, name), "ab") as out:
        proc = subprocess.Popen(
            netns.command(ns, argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=str(ROOT),
        )
    _pidfile(lay, name).write_text(f"{proc.pid}\n")
    return proc.pid


def _wait_ready(lay: Layout, name: str, pid: int, timeout: float = READY_TIMEOUT) -> dict[str, str]:
    # The chassis writes its ready file once serving; no event reaches us from
    # another process, so poll it with a deadline.
    ready = _ready_file(lay, name)
    deadline = time.monotonic() + timeout
    while True:
        if ready.exists():
            with contextlib.suppress(ValueError):
                info: dict[str, str] = json.loads(ready.read_text())
                return info
        if not netns.pid_alive(pid):
            netns.reap(pid)
            raise ComponentError(f"{name} exited at start:\n{tail(log_file(lay, name))}")
        if time.monotonic() > deadline:
            raise ComponentError(f"{name} not ready after {timeout}s:\n{tail(log_file(lay, name))}")
        time.sleep(0.02)


def _stop(lay: Layout, name: str, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    """Stop a component by pidfile (SIGKILL after the timeout); idempotent."""
    daemon.stop(_pidfile(lay, name), timeout=timeout, marker=_marker(lay, name), sig=sig)
    _ready_file(lay, name).unlink(missing_ok=True)


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _free_port(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        port: int = s.getsockname()[1]
        return port


# -- the components ----------------------------------------------------------------


def _run_service(
    lay: Layout, name: str, module: str, args: list[str], ns: str | None = None
) -> dict[str, Any]:
    """Start `python -m module args` as component `name` and wait until it serves."""
    ready = _ready_file(lay, name)
    ready.unlink(missing_ok=True)
    argv = [sys.executable, "-u", "-m", module, *args,
            "--ready-file", str(ready), "--log-format", "json"]  # fmt: skip
    return _wait_ready(lay, name, _spawn(lay, name, argv, ns=ns))


def start_ipam(lay: Layout, st: Settings) -> None:
    _run_service(lay, IPAM, "services.ipam.main", [
        "--listen", st.ipam_target,
        "--socket", str(ipam_socket(lay)),
        "--store", "sqlite",
        "--sqlite-path", str(kovn_dir(lay) / "ipam.db"),
        "--cooldown-seconds", str(st.cooldown_seconds),
    ])  # fmt: skip


def start_controller(lay: Layout, st: Settings) -> None:
    _run_service(lay, CONTROLLER, "services.controller.main", [
        "--listen", st.controller_target,
        "--advertise", st.controller_target,
        "--kubeconfig", lay.kubeconfig,
        "--ipam", f"unix:{ipam_socket(lay)}",
        "--nb", f"tcp:{lay.central_ip}:{NB_PORT}",
        "--identity", f"{lay.name}-controller",
        "--lease-namespace", "kube-system",
        # One replica: after a restart it must lead again at once, not
        # after the old holder's Lease runs out.
        "--lease-duration", "4", "--renew-deadline", "3", "--retry-period", "0.5",
        "--default-subnet-cidr", st.default_subnet_cidr,
        "--join-cidr", st.join_cidr,
        "--usage-period", "2",
        "--gc-period", "30",
    ])  # fmt: skip


def start_dataplane(lay: Layout, st: Settings, node: NodeLayout) -> None:
    _run_service(lay, dataplane_name(node), "services.dataplane.main", [
        "--socket", str(lay.dataplane_socket(node.name)),
        "--node-name", node.name,
        "--ovsdb", f"unix:{lay.ovs_dir(node.name) / 'db.sock'}",
        "--controller", st.controller_target,
        "--metrics", f"{node.underlay_ip}:0",
    ], ns=node.netns)  # fmt: skip


def start_dns(lay: Layout) -> dict[str, Any]:
    """Cluster DNS on every node's kovn0 address (see sandbox/dns); returns where it listens."""
    return _run_service(lay, DNS, "sandbox.dns", ["--state-dir", str(lay.dir)])


def dns_info(lay: Layout) -> dict[str, Any] | None:
    """What the running DNS feeder wrote once ready (kube-dns ClusterIP, each node's
    address), or None when it does not run."""
    if pid_of(lay, DNS) is None:
        return None
    with contextlib.suppress(OSError, ValueError):
        info: dict[str, Any] = json.loads(_ready_file(lay, DNS).read_text())
        return info
    return None


def dns_health(lay: Layout) -> dict[str, str]:
    """Each node's DNS server: SERVING if it answers dns-version.<zone> TXT, else why not."""
    from sandbox.dns import probe

    info = dns_info(lay)
    if info is None:
        return {n.name: "DOWN" for n in lay.nodes} if Settings.path(lay).exists() else {}
    out: dict[str, str] = {}
    for name, srv in (info.get("nodes") or {}).items():
        ans = probe.dig(srv["netns"], srv["address"], f"dns-version.{info['zone']}", "TXT")
        out[name] = "SERVING" if ans.status == "NOERROR" and ans.records else ans.status
    return out


def _starter(lay: Layout, st: Settings, name: str) -> Callable[[], None]:
    if name == DNS:

        def dns() -> None:
            start_dns(lay)

        return dns
    if name == IPAM:
        return lambda: start_ipam(lay, st)
    if name == CONTROLLER:
        return lambda: start_controller(lay, st)
    for n in lay.nodes:
        if name == dataplane_name(n):
            return lambda: start_dataplane(lay, st, n)
    raise ComponentError(f"unknown component {name!r}: one of {component_names(lay)}")


def install_crds(lay: Layout) -> None:
    files = [a for f in sorted(CRDS.glob("*.kovn.io.yaml")) for a in ("-f", str(f))]
    res = subprocess.run(
        ["kubectl", f"--kubeconfig={lay.kubeconfig}", "apply", *files],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if res.returncode != 0:
        raise ComponentError(f"installing kovn's CRDs failed: {res.stderr.strip()}")


def start(lay: Layout, *, cooldown: float | None = None) -> Settings:
    """Start ipam, the controller and every dataplane; return once nodes are bootstrapped.

    Needs the network and the kube API up. The cool-down defaults to
    $KOVN_SANDBOX_COOLDOWN, else DEFAULT_COOLDOWN seconds.
    """
    if cooldown is None:
        cooldown = float(os.environ.get(COOLDOWN_ENV, DEFAULT_COOLDOWN))
    add_control_address(lay)
    ip = control_ip(lay)
    st = Settings(
        control_ip=ip,
        prefixlen=int(lay.subnet.split("/")[1]),
        ipam_port=_free_port(ip),
        controller_port=_free_port(ip),
        cooldown_seconds=cooldown,
    )
    st.save(lay)
    install_crds(lay)
    start_ipam(lay, st)
    start_controller(lay, st)
    for n in lay.nodes:
        start_dataplane(lay, st, n)
    wait_nodes_ready(lay)
    # Listens on each node's kovn0 address: after the nodes bootstrapped.
    start_dns(lay)
    return st


def restart(lay: Layout, name: str, sig: int = signal.SIGTERM) -> None:
    """Stop one component (SIGTERM, or SIGKILL for a crash) and start it again."""
    st = Settings.load(lay)
    begin = _starter(lay, st, name)
    _stop(lay, name, sig)
    begin()


def stop_component(lay: Layout, name: str, sig: int = signal.SIGTERM) -> None:
    _starter(lay, Settings.load(lay), name)  # validates the name
    _stop(lay, name, sig)


def start_component(lay: Layout, name: str) -> None:
    _starter(lay, Settings.load(lay), name)()


def stop(lay: Layout) -> None:
    """Stop every kovn process of the sandbox; DNS and nodes first, ipam last. Idempotent."""
    _stop(lay, DNS)
    for n in lay.nodes:
        _stop(lay, dataplane_name(n))
    _stop(lay, CONTROLLER)
    _stop(lay, IPAM)


def running(lay: Layout) -> dict[str, int | None]:
    return {name: pid_of(lay, name) for name in component_names(lay)}


# -- health ------------------------------------------------------------------------


def _target(lay: Layout, name: str) -> str:
    if name == IPAM:
        return f"unix:{ipam_socket(lay)}"
    if name == CONTROLLER:
        return Settings.load(lay).controller_target
    for n in lay.nodes:
        if name == dataplane_name(n):
            return f"unix:{lay.dataplane_socket(n.name)}"
    raise ComponentError(f"unknown component {name!r}")


def health(lay: Layout, timeout: float = 2.0) -> dict[str, str]:
    """grpc.health.v1 answer of each component: SERVING, NOT_SERVING or DOWN (why)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    out: dict[str, str] = {}
    if not Settings.path(lay).exists():
        return out
    for name in component_names(lay):
        if pid_of(lay, name) is None:
            out[name] = "DOWN"
            continue
        try:
            with grpc.insecure_channel(_target(lay, name)) as ch:
                stub = health_pb2_grpc.HealthStub(ch)
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
            out[name] = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        except grpc.RpcError as e:
            out[name] = f"UNREACHABLE ({e.code().name})"
    return out


def _kovn0_address(node: NodeLayout) -> str:
    res = netns.run(node.netns, ["ip", "-4", "-o", "addr", "show", "dev", "kovn0"], check=False)
    words = res.stdout.split()
    return words[3] if res.returncode == 0 and len(words) > 3 else ""


def node_addresses(lay: Layout) -> dict[str, str]:
    """Each node's kovn0 join address ("" while not bootstrapped)."""
    return {n.name: _kovn0_address(n) for n in lay.nodes}


def wait_nodes_ready(lay: Layout, timeout: float = NODE_READY_TIMEOUT) -> None:
    """Until every dataplane serves and every node's kovn0 has its join address."""
    deadline = time.monotonic() + timeout
    while True:
        h = health(lay)
        addrs = node_addresses(lay)
        pending = [n.name for n in lay.nodes if h.get(dataplane_name(n)) != "SERVING"]
        pending += [f"{node} (kovn0)" for node, a in addrs.items() if not a]
        if not pending:
            return
        if time.monotonic() > deadline:
            logs = "\n".join(
                f"--- {dataplane_name(n)}\n{tail(log_file(lay, dataplane_name(n)), 10)}"
                for n in lay.nodes
            )
            raise ComponentError(f"nodes not bootstrapped after {timeout}s: {pending}\n{logs}")
        time.sleep(0.05)


def describe(lay: Layout) -> dict[str, Any]:
    """Targets for the user (grpcurl) and tests."""
    st = Settings.load(lay)
    return {
        "ipam": st.ipam_target,
        "ipam_socket": str(ipam_socket(lay)),
        "controller": st.controller_target,
        "dataplanes": {n.name: str(lay.dataplane_socket(n.name)) for n in lay.nodes},
        "cooldown_seconds": st.cooldown_seconds,
        "logs": str(kovn_dir(lay)),
        "dns": dns_info(lay),
    }
