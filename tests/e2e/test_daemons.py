"""The daemon layer other tests build on: OVN central, OVS nodes, netns.

These run the real ovsdb-server/ovs-vswitchd/ovn-northd/ovn-controller and
check what the dataplane and controller tests rely on: start returns when
ready, a node registers as a chassis and claims a port, stop is idempotent
and leaves no process, and misuse fails with a clear message.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import daemon, netns
from sandbox.ovn import OvnCentral
from sandbox.ovs import OvsNode

pytestmark = pytest.mark.root


@pytest.fixture
def ns_name() -> Iterator[str]:
    name = f"sbxt-d{secrets.token_hex(3)}"
    netns.create(name)
    try:
        yield name
    finally:
        netns.delete(name)


@pytest.fixture
def central(tmp_path: Path) -> Iterator[OvnCentral]:
    c = OvnCentral(tmp_path / "central", listen_ip="127.0.0.1", nb_port=0, sb_port=0)
    try:
        c.start()
        yield c
    finally:
        c.stop()


def _alive(pid: int | None) -> bool:
    return pid is not None and netns.pid_alive(pid)


def test_central_serves_nb_and_sb_over_unix_and_tcp(central: OvnCentral) -> None:
    central.nbctl("ls-add", "sbxt-ls")
    # The barrier returns once northd has turned the switch into a datapath.
    central.nbctl("--wait=sb", "sync")
    assert "sbxt-ls" in central.sbctl("--columns=external_ids", "list", "Datapath_Binding")
    assert central.nb_tcp is not None and central.nb_tcp.startswith("tcp:127.0.0.1:")
    over_tcp = daemon.tool(["ovn-nbctl", f"--db={central.nb_tcp}", "ls-list"])
    assert "sbxt-ls" in over_tcp
    assert all(central.running().values())


def _is_subreaper() -> bool:
    flag = ctypes.c_int(0)
    ctypes.CDLL(None).prctl(37, ctypes.byref(flag), 0, 0, 0)  # PR_GET_CHILD_SUBREAPER
    return bool(flag.value)


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_central_stop_is_idempotent_and_leaves_no_process(tmp_path: Path) -> None:
    c = OvnCentral(tmp_path / "c")
    c.start()
    pids = list(c.running().values())
    assert all(pids)
    # Our daemons are our children (stop() reaps them at once), but this
    # process does not stay a subreaper for daemons other code detaches.
    assert {_ppid(p) for p in pids if p} == {os.getpid()}
    assert not _is_subreaper()
    c.stop()
    c.stop()
    assert not any(c.running().values())
    assert not any(_alive(p) for p in pids)
    assert c.nb_tcp is None
    # With fixed ports the TCP remotes are known before start (to configure nodes).
    fixed = OvnCentral(tmp_path / "f", listen_ip="172.31.9.2")
    assert (fixed.nb_tcp, fixed.sb_tcp) == ("tcp:172.31.9.2:6641", "tcp:172.31.9.2:6642")


def test_node_registers_chassis_and_claims_port(
    central: OvnCentral, ns_name: str, tmp_path: Path
) -> None:
    node = OvsNode(ns_name, tmp_path / "node", netns=ns_name, ovn_remote=central.sb_remote)
    try:
        node.start()
        assert node.vsctl("get", "Bridge", "br-int", "datapath_type") == "netdev"
        central.nbctl("ls-add", "sbxt-ls", "--", "lsp-add", "sbxt-ls", "sbxt-p1")
        node.vsctl(
            "add-port", "br-int", "sbxt-p1",
            "--", "set", "Interface", "sbxt-p1", "type=internal",
            "external_ids:iface-id=sbxt-p1",
        )  # fmt: skip
        # ovn-controller marks the interface once its flows are installed.
        node.vsctl("wait-until", "Interface", "sbxt-p1", "external_ids:ovn-installed=true")
        chassis = central.sbctl("--bare", "--columns=name", "list", "Chassis")
        assert chassis == ns_name
        # The internal port's tap appears inside the node's namespace, not here.
        links = netns.run(ns_name, ["ip", "-o", "link", "show"]).stdout
        assert "sbxt-p1" in links
        assert not Path("/sys/class/net/sbxt-p1").exists()
    finally:
        node.stop()
    assert not any(node.running().values())


def test_node_stop_twice_and_restart_from_fresh_db(ns_name: str, tmp_path: Path) -> None:
    node = OvsNode(ns_name, tmp_path / "node", netns=ns_name)
    try:
        node.start()
        node.vsctl("add-br", "sbxt-br0", "--", "set", "Bridge", "sbxt-br0", "datapath_type=netdev")
        first = node.running()
        node.stop()
        node.stop()
        assert not any(_alive(p) for p in first.values())
        node.start()
        # start() always begins from an empty database built from the schema.
        assert node.vsctl("list-br") == ""
        assert node.running()["ovn-controller"] is None
    finally:
        node.stop()


def test_node_without_netns_fails_clearly(tmp_path: Path) -> None:
    missing = f"sbxt-missing{os.getpid()}"
    node = OvsNode("n1", tmp_path / "n1", netns=missing)
    with pytest.raises(netns.NetnsError, match=missing):
        node.start()


def test_netns_create_delete_idempotent_and_kills_inside() -> None:
    name = f"sbxt-k{secrets.token_hex(3)}"
    try:
        netns.create(name)
        netns.create(name)
        proc = netns.run(name, ["sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"])
        pid = int(proc.stdout.strip())
        assert pid in netns.pids(name)
        netns.delete(name)
        assert not netns.exists(name)
        assert not netns.pid_alive(pid)
        netns.delete(name)
    finally:
        netns.delete(name)


def test_netns_rejects_bad_names() -> None:
    with pytest.raises(netns.NetnsError, match="invalid netns name"):
        netns.create("a/b")
    with pytest.raises(netns.NetnsError, match="invalid netns name"):
        netns.path("x" * 200)


async def test_netns_acreate_adelete_in_process() -> None:
    name = f"sbxt-a{secrets.token_hex(3)}"
    base = f"sbxt-b{secrets.token_hex(3)}"
    netns.create(base)  # /run/netns is set up the way `ip netns` leaves it
    try:
        p = await netns.acreate(name)
        assert p == netns.path(name) and netns.exists(name)
        out = netns.run(name, ["ip", "-o", "link", "show", "lo"]).stdout
        assert "UP" in out
        # A distinct namespace: not the root's, not the other one's.
        assert os.stat(p).st_ino != os.stat("/proc/self/ns/net").st_ino
        assert os.stat(p).st_ino != os.stat(netns.path(base)).st_ino
        with pytest.raises(FileExistsError):
            await netns.acreate(name)
        await netns.adelete(name)
        assert not netns.exists(name)
        await netns.adelete(name)
    finally:
        netns.delete(name)
        netns.delete(base)


async def test_worker_thread_spawns_inside_a_netns_and_returns_home(ns_name: str) -> None:
    import subprocess

    from sandbox import workers

    def ns_of_child(path: Path | None) -> str:
        with netns.entered(path):
            proc = subprocess.Popen(["readlink", "/proc/self/ns/net"], stdout=subprocess.PIPE)
        out, _ = proc.communicate()
        return out.decode().strip()

    def ns_of_thread() -> str:
        return os.readlink("/proc/thread-self/ns/net")

    root = os.readlink("/proc/self/ns/net")
    inside = await workers.pool().run(lambda: ns_of_child(netns.path(ns_name)))
    assert inside != root
    assert inside == f"net:[{os.stat(netns.path(ns_name)).st_ino}]"
    # Every worker is back in the root namespace afterwards.
    homes = await asyncio.gather(*(workers.pool().run(ns_of_thread) for _ in range(64)))
    assert set(homes) == {root}
    assert await workers.pool().run(lambda: ns_of_child(None)) == root
