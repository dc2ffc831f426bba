"""One container as a host process: in the pod's netns, its own mount ns, a cgroup.

Without a container runtime, a container is a process started from the
host filesystem: `nsenter --net` puts it in the pod's network namespace,
`unshare --mount --propagation slave` gives it a mount namespace of its own
(slave, so the host's unmounts, such as a deleted pod's netns, still reach
it), where the pod's resolv.conf is bind-mounted over /etc/resolv.conf.
The chain execs without forking, so the PID we spawn is the container's
main process. It leads its own session (process group), and when cgroup v2
is writable it is moved into a cgroup of its own before exec, so
`cgroup.kill` ends every process it forked, including ones that left the
process group; without cgroup v2 the process group is what is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from sandbox import workers

CGROUP_PARENT = "kovn-sandbox"

# $1 cgroup dir or "", $2 resolv.conf or "", $3 working dir, then argv.
# A failure here is the runtime's, not the command's: exit 126 + a line in the log.
_WRAPPER = (
    'if [ -n "$1" ]; then echo $$ > "$1/cgroup.procs" || exit 126; fi; '
    'if [ -n "$2" ]; then mount --bind "$2" /etc/resolv.conf || exit 126; fi; '
    'mkdir -p "$3" 2>/dev/null; cd "$3" || exit 126; shift 3; exec "$@"'
)
# The same for a process joining a running container (exec, exec probes).
_JOIN = (
    'if [ -n "$1" ]; then echo $$ > "$1/cgroup.procs" 2>/dev/null; fi; '
    'cd "$2" 2>/dev/null; shift 2; exec "$@"'
)

_cgroup_root: Path | bool | None = False  # False: not probed yet


def cgroup_root() -> Path | None:
    """<cgroup2 mount>/kovn-sandbox if cgroup v2 is mounted and writable, else None."""
    global _cgroup_root
    if _cgroup_root is not False:
        return _cgroup_root if isinstance(_cgroup_root, Path) else None
    found: Path | None = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) > 2 and parts[2] == "cgroup2":
                root = Path(parts[1]) / CGROUP_PARENT
                try:
                    root.mkdir(exist_ok=True)
                except OSError:
                    continue
                if (root / "cgroup.procs").exists() and os.access(root / "cgroup.procs", os.W_OK):
                    found = root
                    break
    _cgroup_root = found if found is not None else None
    return found


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks: with the pid, its identity."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


@dataclass
class Launch:
    argv: list[str]
    env: dict[str, str]
    workdir: str
    netns: str  # path of the network namespace
    resolv: Path | None
    cgroup: Path | None
    log: Path


@dataclass
class Proc:
    """A running container process, ours (popen) or adopted after a restart."""

    pid: int
    ticks: int | None
    cgroup: Path | None
    popen: subprocess.Popen[bytes] | None = None
    exited: asyncio.Future[int | None] | None = field(default=None, repr=False)

    def alive(self) -> bool:
        return self.ticks is not None and start_ticks(self.pid) == self.ticks

    def watch(self) -> asyncio.Future[int | None]:
        """A future of the exit code (128+signal for a signal, None if not our child)."""
        if self.exited is not None:
            return self.exited
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int | None] = loop.create_future()
        self.exited = fut
        try:
            fd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            fut.set_result(self._code())
            return fut

        def done() -> None:
            loop.remove_reader(fd)
            os.close(fd)
            if not fut.done():
                fut.set_result(self._code())

        loop.add_reader(fd, done)
        return fut

    def _code(self) -> int | None:
        if self.popen is None:
            return None
        rc = self.popen.wait()
        return 128 - rc if rc < 0 else rc

    def signal(self, sig: int) -> None:
        """sig to the container's process group and to everything in its cgroup."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)
        for pid in cgroup_pids(self.cgroup):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def kill_all(self) -> None:
        if self.cgroup is not None:
            with contextlib.suppress(OSError):
                (self.cgroup / "cgroup.kill").write_text("1")
        self.signal(signal.SIGKILL)


def cgroup_pids(cg: Path | None) -> list[int]:
    if cg is None:
        return []
    try:
        return [int(p) for p in (cg / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def _spawn(launch: Launch) -> Proc:
    if launch.cgroup is not None:
        launch.cgroup.mkdir(parents=True, exist_ok=True)
    launch.log.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        "nsenter",
        f"--net={launch.netns}",
        "--",
        "unshare",
        "--mount",
        "--propagation",
        "slave",
        "--",
        "/bin/sh",
        "-c",
        _WRAPPER,
        "sh",
        str(launch.cgroup or ""),
        str(launch.resolv or ""),
        launch.workdir or "/",
        *launch.argv,
    ]
    fd = os.open(launch.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
    try:
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=fd,
            env=launch.env,
            start_new_session=True,
        )
    finally:
        os.close(fd)
    return Proc(popen.pid, start_ticks(popen.pid), launch.cgroup, popen)


async def spawn(launch: Launch) -> Proc:
    """Start the container process (off the loop: a fork stalls it)."""
    proc = await workers.pool("plugins").run(lambda: _spawn(launch))
    proc.watch()
    return proc


def adopt(pid: int, ticks: int | None, cgroup: str | None) -> Proc | None:
    """The recorded process if it still runs (after an agents restart)."""
    proc = Proc(pid, ticks, Path(cgroup) if cgroup else None)
    if ticks is None or not proc.alive():
        return None
    proc.watch()
    return proc


def join_argv(proc: Proc, workdir: str, argv: list[str], tty: bool = False) -> list[str]:
    """argv that runs inside a running container's net and mount namespaces and cgroup."""
    head = ["setsid", "-c"] if tty else []
    return [
        *head,
        "nsenter",
        "-t",
        str(proc.pid),
        "-n",
        "-m",
        "--",
        "/bin/sh",
        "-c",
        _JOIN,
        "sh",
        str(proc.cgroup or ""),
        workdir or "/",
        *argv,
    ]


def probe_argv(proc: Proc, workdir: str, argv: list[str]) -> list[str]:
    """join_argv without the cgroup (one exec fewer): a probe is killed on timeout
    by its process group and must stay cheap at one per second per container."""
    return ["nsenter", "-t", str(proc.pid), "-n", "-m", f"--wd={workdir or '/'}", "--", *argv]


def _remove_cgroup(cg: Path, timeout: float = 5.0) -> None:
    # rmdir is refused (EBUSY) until the last killed process has exited, and
    # a pod's directory (ENOTEMPTY) until its containers' are gone.
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError):
            for child in cg.iterdir():
                if child.is_dir():
                    _remove_cgroup(child, max(0.0, deadline - time.monotonic()))
        try:
            cg.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno not in (errno.EBUSY, errno.ENOTEMPTY) or time.monotonic() > deadline:
                return
            with contextlib.suppress(OSError):
                (cg / "cgroup.kill").write_text("1")
            time.sleep(0.005)


def sandbox_cgroup(sandbox: str) -> Path | None:
    """The cgroup under which every container of sandbox `sandbox` runs (None: no cgroup v2)."""
    root = cgroup_root()
    return root / sandbox if root is not None else None


def remove_sandbox_cgroups(sandbox: str) -> None:
    """Kill what is left of a sandbox's containers and remove their cgroups
    (for `down`, which removes the sandbox without stopping pods one by one)."""
    cg = sandbox_cgroup(sandbox)
    if cg is not None and cg.is_dir():
        with contextlib.suppress(OSError):
            (cg / "cgroup.kill").write_text("1")
        _remove_cgroup(cg)


async def remove_cgroup(cg: Path | None) -> None:
    if cg is not None:
        await workers.pool().run(lambda: _remove_cgroup(cg))
