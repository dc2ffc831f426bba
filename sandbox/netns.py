"""Named network namespaces for sandbox nodes, pods and tests.

Every sandbox piece (a node, the OVN central, an external host, a pod) lives
in a named netns under /run/netns so it can be found again from the state
directory after a crash. This module is the one place that creates, deletes
and runs commands in them, so the idempotency rules (create twice is fine,
delete a missing one is fine, delete kills what still runs inside) hold
everywhere.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

NETNS_DIR = Path("/run/netns")

# `ip netns` accepts longer names, but a short bound keeps names usable as
# parts of file names and log lines; the kernel itself imposes no limit.
MAX_NAME = 64


class NetnsError(RuntimeError):
    """A namespace operation failed; the message names the namespace."""


def _check_name(name: str) -> None:
    if not name or len(name) > MAX_NAME or "/" in name or name.startswith("."):
        raise NetnsError(f"invalid netns name {name!r}: 1..{MAX_NAME} chars, no '/'")


def path(name: str) -> Path:
    """The bind-mount file that pins the namespace (what CNI_NETNS names)."""
    _check_name(name)
    return NETNS_DIR / name


def exists(name: str) -> bool:
    return path(name).exists()


def create(name: str) -> Path:
    """Create the namespace with loopback up; an existing one is kept as is."""
    p = path(name)
    if not p.exists():
        res = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
        if res.returncode != 0 and not p.exists():
            raise NetnsError(f"ip netns add {name}: {res.stderr.strip()}")
    run(name, ["ip", "link", "set", "lo", "up"])
    return p


def pids(name: str) -> list[int]:
    """Processes whose network namespace is this one."""
    if not exists(name):
        return []
    res = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
    return [int(p) for p in res.stdout.split() if p.isdigit()]


def kill_all(name: str, timeout: float = 5.0) -> None:
    """SIGTERM everything inside the namespace, then SIGKILL what is left."""
    victims = [p for p in pids(name) if p != os.getpid()]
    everyone = list(victims)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while victims and time.monotonic() < deadline:
            victims = [p for p in victims if pid_alive(p)]
            if victims:
                time.sleep(0.02)
        if not victims:
            break
    for pid in everyone:
        # Reap the ones this process adopted (see daemon.become_subreaper).
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers signal 0; treat it as gone.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def delete(name: str) -> None:
    """Kill what runs inside and remove the namespace; missing is fine."""
    if not exists(name):
        return
    kill_all(name)
    res = subprocess.run(["ip", "netns", "delete", name], capture_output=True, text=True)
    if res.returncode != 0 and exists(name):
        # A half-created entry (file without a mount) cannot be removed by ip.
        try:
            path(name).unlink()
        except OSError as e:
            raise NetnsError(f"ip netns delete {name}: {res.stderr.strip()} ({e})") from e


def list_names(prefix: str = "") -> list[str]:
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(prefix))


def command(name: str | None, argv: Sequence[str]) -> list[str]:
    """The argv that runs `argv` inside namespace `name` (or as is for None)."""
    if name is None:
        return list(argv)
    _check_name(name)
    return ["ip", "netns", "exec", name, *argv]


def run(
    name: str | None,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    input: str | None = None,
    timeout: float | None = 60.0,
) -> subprocess.CompletedProcess[str]:
    """Run a command inside the namespace and capture its output.

    With check, a non-zero exit raises NetnsError carrying the command and
    its stderr, which is what a caller needs to see in a failing test.
    """
    full_env = None
    if env is not None:
        full_env = {**os.environ, **env}
    res = subprocess.run(
        command(name, argv),
        capture_output=True,
        text=True,
        env=full_env,
        input=input,
        timeout=timeout,
    )
    if check and res.returncode != 0:
        where = f" in netns {name}" if name else ""
        raise NetnsError(f"{' '.join(argv)}{where} exited {res.returncode}: {res.stderr.strip()}")
    return res
