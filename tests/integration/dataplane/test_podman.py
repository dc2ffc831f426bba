"""A real runtime drives kovn-cni: podman (CNI backend) runs a busybox
container on the kovn network, which reaches a pod plugged before it.

podman runs with a private containers.conf, storage and CNI config directory
under /tmp, so the machine's own configuration is never read or changed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cni_shim.launcher import install
from sandbox.testbed.dataplane import Env

pytestmark = [pytest.mark.root, pytest.mark.slow]

BUSYBOX = Path("/bin/busybox")
IMAGE = "localhost/kdp-busybox"


@pytest.fixture
def podman(env: Env) -> Iterator[tuple[dict[str, str], Path]]:
    if not shutil.which("podman") or not shutil.which("runc") or not BUSYBOX.exists():
        pytest.skip("needs podman, runc and busybox-static")
    tmp = Path(tempfile.mkdtemp(prefix="kdp-pm-"))
    (tmp / "cni.d").mkdir()
    install(str(tmp / "bin" / "kovn-cni"))
    (tmp / "containers.conf").write_text(f"""
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{tmp}/events.log"
[network]
network_backend = "cni"
network_config_dir = "{tmp}/cni.d"
cni_plugin_dirs = ["{tmp}/bin", "/usr/lib/cni"]
""")
    (tmp / "storage.conf").write_text(f"""
[storage]
driver = "vfs"
graphroot = "{tmp}/root"
runroot = "{tmp}/run"
""")
    conflist = {"cniVersion": "1.0.0", "name": "kdpnet",
                "plugins": [{"type": "kovn-cni", "socket": str(env.dp_sock)}]}  # fmt: skip
    (tmp / "cni.d" / "kdpnet.conflist").write_text(json.dumps(conflist))
    penv = {
        **os.environ,
        "CONTAINERS_CONF": str(tmp / "containers.conf"),
        "CONTAINERS_STORAGE_CONF": str(tmp / "storage.conf"),
        "CONTAINERS_REGISTRIES_CONF": "/dev/null",
    }
    rootfs = tmp / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    for applet in ("sh", "ip", "ping", "cat"):
        (rootfs / "bin" / applet).symlink_to("busybox")
    tar = subprocess.run(["tar", "-C", str(rootfs), "-c", "."], capture_output=True, check=True)
    subprocess.run(["podman", "import", "-", IMAGE], input=tar.stdout, env=penv,
                   capture_output=True, check=True, timeout=120)  # fmt: skip
    try:
        yield penv, tmp
    finally:
        subprocess.run(["podman", "rm", "-af", "-t", "0"], env=penv, capture_output=True,
                       timeout=120, check=False)  # fmt: skip
        subprocess.run(["podman", "system", "reset", "-f"], env=penv, capture_output=True,
                       timeout=120, check=False)  # fmt: skip
        shutil.rmtree(tmp, ignore_errors=True)


def test_podman_container_on_kovn_network(env: Env, podman: tuple[dict[str, str], Path]) -> None:
    penv, _tmp = podman
    peer_cid, _peer_ns, peer_path, peer = env.add("pm-peer")
    assert peer.rc == 0, peer.out
    peer_ip = peer.out["ips"][0]["address"].split("/")[0]
    name = "kdp-pm-c1"
    mine = env.add_pod(name)
    before = set(env.ovs_ports())
    run = subprocess.run(
        ["podman", "run", "--rm", "--network", "kdpnet", "--name", name, IMAGE,
         "sh", "-c", f"ip -o addr show eth0; ping -c 1 -W 3 {peer_ip}"],
        env=penv, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr + env.log_tail()
    assert mine.ips[0].address in run.stdout
    assert "1 packets received" in run.stdout
    # --rm: podman called DEL, so the container's port is gone again.
    assert set(env.ovs_ports()) == before
    assert env.cni(env.env("DEL", peer_cid, peer_path)).rc == 0
