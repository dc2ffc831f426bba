"""Named network namespaces for sandbox nodes, pods and tests.

Every sandbox piece (a node, the OVN central, an external host, a pod) lives
in a named netns under /run/netns so it can be found again from the state
directory after a crash. This module is the one place that creates, deletes
and runs commands in them, so the idempotency rules (create twice is fine,
delete a missing one is fine, delete kills what still runs inside) hold
everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import os
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from sandbox import workers
from sandbox.workers import ThreadPoisoned

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
        reap(pid)  # the ones this process adopted (see daemon.adopting_orphans)


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


def reap(pid: int) -> None:
    """Collect pid if it is a dead child of ours (detached daemons we adopted)."""
    if not pid_alive(pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


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


# -- in-process creation for pods ------------------------------------------------
#
# The kubelet creates and removes a netns per pod. `ip netns add` costs two
# fork+exec per pod and, run 200 at a time, spent over a second each in
# contention. The same steps done in-process on a worker thread: unshare the
# thread's network namespace, bind-mount it at /run/netns/NAME, bring lo up,
# and setns back (a thread that cannot get back retires; see workers.py).

_CLONE_NEWNET = 0x40000000
_MS_BIND = 4096
_MNT_DETACH = 2
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_libc = ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise NetnsError(f"{what}: {os.strerror(err)}")


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifr = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, _SIOCGIFFLAGS, ifr))[1]
        fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


def _create_here(p: Path) -> None:
    """On a worker thread: a new netns pinned at p, lo up; the thread returns home."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444)
        os.close(fd)
        try:
            _check(_libc.unshare(_CLONE_NEWNET), f"unshare for {p.name}")
            try:
                src = b"/proc/thread-self/ns/net"
                _check(_libc.mount(src, str(p).encode(), b"none", _MS_BIND, None), f"mount {p}")
                _loopback_up()
            finally:
                if _libc.setns(home, _CLONE_NEWNET) != 0:
                    raise ThreadPoisoned(f"cannot return to the home netns after {p.name}")
        except BaseException:
            _libc.umount2(str(p).encode(), _MNT_DETACH)
            p.unlink(missing_ok=True)
            raise
    finally:
        os.close(home)


async def acreate(name: str) -> Path:
    """Create netns NAME (lo up) without spawning a process.

    /run/netns must already be set up as `ip netns` does it (true once any
    node namespace exists); falls back to `ip netns add` otherwise.
    """
    p = path(name)
    if not _netns_dir_is_mount():
        await asyncio.to_thread(create, name)
        return p
    await workers.pool().run(lambda: _create_here(p))
    return p


async def adelete(name: str) -> None:
    """Unmount and remove netns NAME if present (processes inside are not killed)."""
    p = path(name)
    if p.exists():
        # umount2 can take milliseconds with many mounts: keep it off the loop.
        await workers.pool().run(lambda: _delete_here(p))


def _delete_here(p: Path) -> None:
    _libc.umount2(str(p).encode(), _MNT_DETACH)
    p.unlink(missing_ok=True)


_dir_ready = False


def _netns_dir_is_mount() -> bool:
    global _dir_ready
    if not _dir_ready:
        target = str(NETNS_DIR)
        with open("/proc/self/mountinfo") as f:
            _dir_ready = any(line.split()[4] == target for line in f)
    return _dir_ready


@contextlib.contextmanager
def entered(ns_path: Path | None) -> Iterator[None]:
    """Run the block with this thread in netns ns_path (None: stay), then return.

    For worker threads only (see workers.py): a thread that cannot get back
    raises ThreadPoisoned and retires.
    """
    if ns_path is None:
        yield
        return
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(ns_path, os.O_RDONLY)
        try:
            _check(_libc.setns(target, _CLONE_NEWNET), f"setns {ns_path}")
        finally:
            os.close(target)
        try:
            yield
        finally:
            if _libc.setns(home, _CLONE_NEWNET) != 0:
                raise ThreadPoisoned(f"cannot return to the home netns from {ns_path}")
    finally:
        os.close(home)
