"""Bring a whole sandbox cluster up, and take it down without a trace.

`up` follows the plan in layout.py: the underlay bridge, the OVN central
and external-host namespaces, one namespace per node with its OVS/OVN
daemons and br-phy uplink, per-node CNI config, the embedded Kubernetes
API and the node agents (kubelets + scheduler). The plan is saved before
anything is created, and `down` undoes every item of it that exists, in
reverse, tolerating whatever a crash left half done.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import structlog

from sandbox import daemon, netns, underlay
from sandbox.layout import STATE_FILE, Layout, NodeLayout
from sandbox.ovn import OvnCentral
from sandbox.ovs import OvsNode
from sandbox.runtime import process

log = structlog.get_logger(__name__)

REFERENCE_CNI_DIR = Path("/usr/lib/cni")
KUBEAPI_READY_TIMEOUT = 30.0
AGENTS_READY_TIMEOUT = 30.0
NB_PORT = 6641
SB_PORT = 6642


class SandboxError(RuntimeError):
    """The sandbox could not be brought up or queried; the message says why."""


def central_of(lay: Layout) -> OvnCentral:
    return OvnCentral(
        lay.central_dir,
        netns=lay.central_netns,
        listen_ip=lay.central_ip,
        nb_port=NB_PORT,
        sb_port=SB_PORT,
    )


def node_of(lay: Layout, node: NodeLayout) -> OvsNode:
    return OvsNode(
        node.name,
        lay.ovs_dir(node.name),
        netns=node.netns,
        ovn_remote=f"tcp:{lay.central_ip}:{SB_PORT}",
        encap_ip=node.underlay_ip,
    )


def _prefix_len(lay: Layout) -> int:
    return int(lay.subnet.split("/")[1])


# -- up ------------------------------------------------------------------------


def _foreign_files(state_dir: Path) -> list[Path]:
    """Files other than logs kept by an earlier `down --keep-logs`."""
    if not state_dir.is_dir():
        return []
    return [p for p in state_dir.rglob("*") if not p.is_dir() and p.suffix != ".log"]


def up(
    name: str,
    state_dir: Path,
    nodes: int,
    cni: str = "bridge",
    *,
    kube: bool = True,
    cooldown: float | None = None,
) -> Layout:
    """Create the sandbox; on any failure undo what was made and raise.

    kube=False builds only the network and OVN (for tests of the datapath).
    With cni "kovn" (and kube), kovn's services run too (components.py);
    cooldown is then ipam's address cool-down in seconds (default: the
    sandbox's, see components.DEFAULT_COOLDOWN).
    """
    lay = Layout.plan(name, state_dir, nodes, cni)
    if (state_dir / STATE_FILE).exists():
        old = Layout.load(state_dir)
        alive = [d for procs in daemons(old).values() for d, pid in procs.items() if pid]
        if alive:
            raise SandboxError(
                f"sandbox {old.name!r} is already up (state dir {state_dir}, running: "
                f"{', '.join(sorted(set(alive)))}); run `down` first"
            )
        # Leftovers of a crashed sandbox (nothing runs): clear them, reuse the names.
        down(state_dir)
    elif _foreign_files(state_dir):
        raise SandboxError(
            f"state dir {state_dir} holds files but no sandbox state "
            f"(e.g. {_foreign_files(state_dir)[0]}); choose another --state-dir"
        )
    clashes = [n for n in lay.all_netns() if netns.exists(n)]
    clashes += [link for link in lay.root_links() if underlay.link_exists(link)]
    if clashes:
        raise SandboxError(
            f"names of sandbox {name!r} are already in use: {clashes} "
            "(another sandbox with a clashing name?)"
        )
    lay.save()
    t0 = time.monotonic()
    try:
        _build_network(lay)
        _write_cni_config(lay)
        if kube:
            _start_kubeapi(lay)
            lay.save()
            _start_agents(lay)
            if lay.cni == "kovn":
                # After the kubelets registered the Nodes: each dataplane asks
                # the controller for its node's join port. No pod exists yet,
                # so no ADD can come before the services are up.
                from sandbox import components

                components.start(lay, cooldown=cooldown)
    except BaseException:
        down(state_dir, keep_logs=True)
        raise
    log.info("sandbox up", name=name, nodes=nodes, seconds=round(time.monotonic() - t0, 2))
    return lay


def _build_network(lay: Layout) -> None:
    plen = _prefix_len(lay)
    underlay.create_bridge(lay.bridge)
    for ns, link, ip in (
        (lay.central_netns, lay.central_link, lay.central_ip),
        (lay.external_netns, lay.external_link, lay.external_ip),
    ):
        netns.create(ns)
        underlay.plug(lay.bridge, link, ns)
        underlay.add_address(ns, "eth0", f"{ip}/{plen}")
    central_of(lay).start()
    with ThreadPoolExecutor(max_workers=max(1, len(lay.nodes))) as pool:
        list(pool.map(lambda n: _build_node(lay, n), lay.nodes))
    central = central_of(lay)
    for n in lay.nodes:
        central.sbctl("--timeout=20", "wait-until", "Chassis", n.name)


def _build_node(lay: Layout, node: NodeLayout) -> None:
    netns.create(node.netns)
    underlay.plug(lay.bridge, node.root_link, node.netns)
    ovs = node_of(lay, node)
    ovs.start_ovs()
    # Native tunnelling in the userspace datapath: the underlay NIC is a port
    # of a netdev bridge and the tunnel IP sits on that bridge's own port.
    ovs.vsctl(
        "add-br", "br-phy",
        "--", "set", "Bridge", "br-phy", "datapath_type=netdev",
        "--", "add-port", "br-phy", "eth0",
    )  # fmt: skip
    underlay.disable_offloads("br-phy", node.netns)
    underlay.add_address(node.netns, "br-phy", f"{node.underlay_ip}/{_prefix_len(lay)}")
    netns.run(node.netns, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
    if lay.cni == "bridge":
        # Pod CIDRs of the other nodes via their underlay IPs (what a cloud
        # route table does for the reference bridge plugin).
        for other in lay.nodes:
            if other.name != node.name:
                netns.run(
                    node.netns,
                    ["ip", "route", "replace", other.pod_cidr, "via", other.underlay_ip],
                )
    ovs.start_ovn()


def _write_cni_config(lay: Layout) -> None:
    for n in lay.nodes:
        conf_dir, bin_dir = lay.cni_conf_dir(n.name), lay.cni_bin_dir(n.name)
        conf_dir.mkdir(parents=True, exist_ok=True)
        bin_dir.mkdir(parents=True, exist_ok=True)
        lay.pods_dir(n.name).mkdir(parents=True, exist_ok=True)
        for plugin in REFERENCE_CNI_DIR.iterdir():
            link = bin_dir / plugin.name
            if not link.exists():
                link.symlink_to(plugin)
        if lay.cni == "kovn":
            _write_kovn_cni(lay, n)
            continue
        conflist = {
            "cniVersion": "1.0.0",
            "name": "kovn-sandbox",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": "cni0",
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": n.pod_cidr}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(lay.node_dir(n.name) / "cni" / "host-local"),
                    },
                }
            ],
        }
        (conf_dir / "10-bridge.conflist").write_text(json.dumps(conflist, indent=2) + "\n")


def _write_kovn_cni(lay: Layout, n: NodeLayout) -> None:
    """kovn-cni in the node's bin dir, its conflist naming the node's dataplane socket.

    The dataplane service that listens on that socket is started by the
    kovn services wiring (a later issue); until then ADD fails with CNI
    code 11 (try again) and the kubelet retries with backoff.
    """
    from cni_shim.launcher import install

    install(str(lay.cni_bin_dir(n.name) / "kovn-cni"))
    conflist = {
        "cniVersion": "1.0.0",
        "name": "kovn",
        "plugins": [{"type": "kovn-cni", "socket": str(lay.dataplane_socket(n.name))}],
    }
    (lay.cni_conf_dir(n.name) / "10-kovn.conflist").write_text(json.dumps(conflist, indent=2))


def _spawn(lay: Layout, name: str, argv: list[str], pass_fds: tuple[int, ...] = ()) -> int:
    log_file = open(lay.dir / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=pass_fds,
            cwd=str(Path(__file__).resolve().parent.parent),
        )
    finally:
        log_file.close()
    (lay.dir / f"{name}.pid").write_text(f"{proc.pid}\n")
    return proc.pid


def _start_kubeapi(lay: Layout) -> None:
    ready = lay.dir / "kubeapi.ready"
    ready.unlink(missing_ok=True)
    lay.kubeapi_dir.mkdir(parents=True, exist_ok=True)
    pid = _spawn(
        lay,
        "kubeapi",
        [
            sys.executable,
            "-u",
            "-m",
            "sandbox.kubeapi",
            "--state-dir",
            str(lay.kubeapi_dir),
            "--listen",
            "127.0.0.1:0",
            "--ready-file",
            str(ready),
        ],
    )
    # The API server's interface is a ready file; wait for it with a deadline.
    deadline = time.monotonic() + KUBEAPI_READY_TIMEOUT
    while True:
        if ready.exists():
            try:
                info = json.loads(ready.read_text())
                lay.api_url, lay.kubeconfig = info["url"], info["kubeconfig"]
                return
            except (ValueError, KeyError):
                pass  # written but not complete yet
        if not netns.pid_alive(pid):
            raise SandboxError(f"kube API server exited:\n{_tail(lay.dir / 'kubeapi.log')}")
        if time.monotonic() > deadline:
            raise SandboxError(f"kube API server not ready:\n{_tail(lay.dir / 'kubeapi.log')}")
        time.sleep(0.02)


def stop_agents(lay: Layout) -> None:
    """Stop the kubelets + scheduler process; pods and their netns stay as they are."""
    _kill_pidfile(lay.dir / "agents.pid", "sandbox.agents")


def start_agents(lay: Layout) -> None:
    """(Re)start the kubelets + scheduler; they adopt the pods recorded in the state dir."""
    if _process_alive(lay.dir / "agents.pid", "sandbox.agents"):
        raise SandboxError(f"the node agents of sandbox {lay.name} are already running")
    _start_agents(lay)


def _start_agents(lay: Layout) -> None:
    r, w = os.pipe()
    try:
        pid = _spawn(
            lay,
            "agents",
            [
                sys.executable,
                "-u",
                "-m",
                "sandbox.agents",
                "--state-dir",
                str(lay.dir),
                "--ready-fd",
                str(w),
            ],
            pass_fds=(w,),
        )
        os.close(w)
        w = -1
        # Event, not poll: the agents write a line once nodes are registered
        # and the pod watch is synced; EOF means they died.
        ready, _, _ = select.select([r], [], [], AGENTS_READY_TIMEOUT)
        line = os.read(r, 64) if ready else b""
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    if not line.startswith(b"ready"):
        _kill_pidfile(lay.dir / "agents.pid", "sandbox.agents")
        raise SandboxError(f"node agents failed (pid {pid}):\n{_tail(lay.dir / 'agents.log')}")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# -- processes by pidfile --------------------------------------------------------


def _process_alive(pidfile: Path, marker: str) -> int | None:
    return daemon.read_pid(pidfile, marker=marker)


def _kill_pidfile(pidfile: Path, marker: str, timeout: float = 5.0) -> None:
    daemon.stop(pidfile, timeout=timeout, marker=marker)


def _stop_kovn(lay: Layout) -> None:
    """kovn's services in their order (dataplanes, controller, ipam); see components.py."""
    from sandbox import components

    try:
        components.stop(lay)
    except Exception as e:  # down goes on; the pidfile sweep below stops the rest
        log.warning("stopping kovn's services failed", error=str(e))


def _stop_other_pidfiles(lay: Layout) -> None:
    """Stop whatever else left a pidfile in the state dir (e.g. kovn's services).

    Anything started for the sandbox keeps its pidfile under the state dir;
    `down` stops it even if nothing told `down` about it. A pid counts only
    if that process's command line names the state dir (pids get reused).
    The OVS/OVN daemons are left to their own orderly stop.
    """
    own = {lay.central_dir, *(lay.ovs_dir(n.name) for n in lay.nodes)}
    marker = str(lay.dir)
    for pidfile in sorted(lay.dir.rglob("*.pid")):
        if pidfile.parent in own:
            continue
        _kill_pidfile(pidfile, marker)


# -- down ------------------------------------------------------------------------


def down(state_dir: Path, keep_logs: bool = False) -> bool:
    """Remove everything the sandbox in state_dir made; False if there was none."""
    try:
        lay = Layout.load(state_dir)
    except FileNotFoundError:
        return False
    t0 = time.monotonic()
    _kill_pidfile(state_dir / "agents.pid", "sandbox.agents")
    if lay.cni == "kovn":
        _stop_kovn(lay)
    _kill_pidfile(state_dir / "kubeapi.pid", "sandbox.kubeapi")
    _stop_other_pidfiles(lay)
    pod_ns = re.compile(re.escape(lay.pod_netns_prefix) + r"[0-9a-f]{12}$")
    for n in lay.nodes:
        for rec_file in lay.pods_dir(n.name).glob("*.json"):
            try:
                rec: dict[str, Any] = json.loads(rec_file.read_text())
            except (OSError, ValueError):
                continue
            name = rec.get("netns", "")
            if isinstance(name, str) and pod_ns.match(name):
                netns.delete(name)
    for name in netns.list_names(lay.pod_netns_prefix):
        if pod_ns.match(name):
            netns.delete(name)
    # Containers' processes and cgroups: pods still running are not stopped
    # one by one on the way down.
    process.remove_sandbox_cgroups(lay.name)
    for n in lay.nodes:
        node_of(lay, n).stop()
        netns.delete(n.netns)
    central_of(lay).stop()
    for ns in (lay.central_netns, lay.external_netns):
        netns.delete(ns)
    for link in lay.root_links():
        underlay.delete_link(link)
    _remove_state(state_dir, keep_logs)
    log.info("sandbox down", name=lay.name, seconds=round(time.monotonic() - t0, 2))
    return True


def _remove_state(state_dir: Path, keep_logs: bool) -> None:
    if not keep_logs:
        shutil.rmtree(state_dir, ignore_errors=True)
        return
    # Keep *.log for the post-mortem; drop sockets, pidfiles, dbs and state.
    for path in sorted(state_dir.rglob("*"), reverse=True):
        if path.is_symlink() or path.is_socket() or (path.is_file() and path.suffix != ".log"):
            path.unlink(missing_ok=True)
        elif path.is_dir():
            with contextlib.suppress(OSError):
                path.rmdir()


# -- status ----------------------------------------------------------------------


def load(state_dir: Path) -> Layout:
    try:
        return Layout.load(state_dir)
    except FileNotFoundError:
        raise SandboxError(f"no sandbox in {state_dir} (run `up` first)") from None


def pod_records(lay: Layout) -> list[dict[str, Any]]:
    out = []
    for n in lay.nodes:
        for f in sorted(lay.pods_dir(n.name).glob("*.json")):
            try:
                out.append(json.loads(f.read_text()))
            except (OSError, ValueError):
                continue
    return out


def daemons(lay: Layout) -> dict[str, dict[str, int | None]]:
    out: dict[str, dict[str, int | None]] = {"central": central_of(lay).running()}
    for n in lay.nodes:
        out[n.name] = node_of(lay, n).running()
    out["api"] = {
        "kubeapi": _process_alive(lay.dir / "kubeapi.pid", "sandbox.kubeapi"),
        "agents": _process_alive(lay.dir / "agents.pid", "sandbox.agents"),
    }
    return out
