"""Start and stop one OVS/OVN daemon by pidfile.

OVS and OVN daemons all follow one convention: `--detach` returns once the
daemon is ready, `--pidfile` names it, `--log-file` and `--unixctl` keep
several instances apart on one machine. Sandboxes stop daemons after a
crash from nothing but the state directory, so stopping works from the
pidfile alone and checks the pid still belongs to that program (pids get
reused).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import structlog

from sandbox import netns

log = structlog.get_logger(__name__)


class DaemonError(RuntimeError):
    """A daemon failed to start; the message carries the tail of its log."""


def private_env(run_dir: Path) -> dict[str, str]:
    """Environment that points every OVS/OVN tool at this instance only."""
    d = str(run_dir)
    return {
        "OVS_RUNDIR": d,
        "OVS_LOGDIR": d,
        "OVS_DBDIR": d,
        "OVS_SYSCONFDIR": d,
        "OVN_RUNDIR": d,
        "OVN_LOGDIR": d,
        "OVN_DBDIR": d,
        "OVN_SYSCONFDIR": d,
    }


def log_tail(log_file: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log_file.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def start(
    program: str,
    args: Sequence[str],
    *,
    run_dir: Path,
    name: str,
    netns_name: str | None = None,
    env: Mapping[str, str] | None = None,
    unixctl: bool = True,
    timeout: float = 30.0,
) -> int:
    """Run `program` detached with pidfile/log/ctl under run_dir; return its pid.

    The daemon's files are `<run_dir>/<name>.pid|.log|.ctl`.
    """
    pidfile = run_dir / f"{name}.pid"
    logfile = run_dir / f"{name}.log"
    argv = [
        program,
        *args,
        f"--pidfile={pidfile}",
        f"--log-file={logfile}",
        "--detach",
        "--no-chdir",
        "-vconsole:off",
        "-vfile:info",
    ]
    if unixctl:
        argv.append(f"--unixctl={run_dir / (name + '.ctl')}")
    full_env = {**os.environ, **private_env(run_dir), **(env or {})}
    t0 = time.monotonic()
    try:
        # The daemon's launcher exits once it is ready; while it does, this
        # process is the subreaper, so the daemon becomes our child and
        # stop() can reap it at once (PID 1 here reaps orphans only every
        # second or so). Only for this call: daemons other code detaches
        # must not become zombies of a process that never waits for them.
        with adopting_orphans():
            res = subprocess.run(
                netns.command(netns_name, argv),
                capture_output=True,
                text=True,
                env=full_env,
                timeout=timeout,
            )
    except subprocess.TimeoutExpired as e:
        stop(pidfile, program)
        raise DaemonError(f"{name}: not ready after {timeout}s\n{log_tail(logfile)}") from e
    if res.returncode != 0:
        raise DaemonError(
            f"{name}: {program} exited {res.returncode}: {res.stderr.strip()}\n{log_tail(logfile)}"
        )
    pid = read_pid(pidfile, program)
    if pid is None:
        raise DaemonError(f"{name}: no live process in {pidfile}\n{log_tail(logfile)}")
    log.debug(
        "daemon started",
        daemon=name,
        pid=pid,
        netns=netns_name,
        seconds=round(time.monotonic() - t0, 3),
    )
    return pid


def read_pid(pidfile: Path, program: str | None = None, *, marker: str | None = None) -> int | None:
    """The pid in the file if that process is alive (and runs `program`, and
    has `marker` in its command line: a recycled pid never matches)."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        return None
    if program is not None:
        exe = cmdline.split(b"\0", 1)[0].decode(errors="replace")
        if os.path.basename(exe) != os.path.basename(program):
            return None
    if marker is not None and marker not in cmdline.decode(errors="replace"):
        return None
    return pid


def stop(
    pidfile: Path,
    program: str | None = None,
    timeout: float = 5.0,
    *,
    marker: str | None = None,
    sig: int = signal.SIGTERM,
) -> None:
    """`sig` (SIGTERM) to the process named by the pidfile, SIGKILL if it
    lingers; idempotent. `program`/`marker` as in `read_pid`.

    Returns once the process is gone, not merely once its pidfile is (the
    daemons remove the pidfile on the way out, before they exit). A daemon
    that died earlier (crash, SIGKILL) and was adopted by us is reaped.
    """
    try:
        raw: int | None = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        raw = None
    pid = read_pid(pidfile, program, marker=marker)
    if pid is not None:
        for each in (sig, signal.SIGKILL):
            try:
                os.kill(pid, each)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and netns.pid_alive(pid):
                time.sleep(0.005)
            if not netns.pid_alive(pid):
                break
    if raw is not None:
        netns.reap(raw)
    pidfile.unlink(missing_ok=True)


_PR_SET_CHILD_SUBREAPER = 36
_libc = ctypes.CDLL(None, use_errno=True)
_adopt_lock = threading.Lock()
_adopting = 0


@contextlib.contextmanager
def adopting_orphans() -> Iterator[None]:
    """Be the child subreaper (PR_SET_CHILD_SUBREAPER) for the duration of the block."""
    global _adopting
    with _adopt_lock:
        if _adopting == 0:
            _libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        _adopting += 1
    try:
        yield
    finally:
        with _adopt_lock:
            _adopting -= 1
            if _adopting == 0:
                _libc.prctl(_PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


class ToolError(RuntimeError):
    """An OVS/OVN command-line tool failed; the message has its argv and stderr."""


def tool(argv: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 60) -> str:
    """Run an ovs-*/ovn-* client tool and return its stdout stripped."""
    if shutil.which(argv[0]) is None:
        raise FileNotFoundError(f"{argv[0]} is not installed")
    res = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )
    if res.returncode != 0:
        raise ToolError(f"{' '.join(argv)} exited {res.returncode}: {res.stderr.strip()}")
    return res.stdout.strip()
