"""A private ovsdb-server holding only the OVN NB schema, for NB writer tests.

It starts in tens of milliseconds and needs no northd; tests that need the
full OVN central (NB + SB + northd) use sandbox.ovn instead.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NB_SCHEMA = "/usr/share/ovn/ovn-nb.ovsschema"


@contextmanager
def nb_server(run_dir: Path) -> Iterator[str]:
    """Run ovsdb-server with an empty NB database; yields its unix remote."""
    run_dir.mkdir(parents=True, exist_ok=True)
    db = run_dir / "nb.db"
    sock = run_dir / "nb.sock"
    pidfile = run_dir / "nb.pid"
    subprocess.run(["ovsdb-tool", "create", str(db), NB_SCHEMA], check=True)
    subprocess.run(
        [
            "ovsdb-server",
            str(db),
            f"--remote=punix:{sock}",
            f"--pidfile={pidfile}",
            f"--unixctl={run_dir / 'nb.ctl'}",
            f"--log-file={run_dir / 'nb.log'}",
            "--detach",
            "--no-chdir",
        ],
        check=True,
    )
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():  # no event exists for "socket bound"
            if time.monotonic() > deadline:
                raise TimeoutError(f"ovsdb-server did not create {sock}")
            time.sleep(0.01)
        yield f"unix:{sock}"
    finally:
        _stop(pidfile)


def _stop(pidfile: Path) -> None:
    """SIGTERM the daemon and wait for it to be gone (SIGKILL after 5 s)."""
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, signal.SIGTERM)
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return
    deadline = time.monotonic() + 5
    while _alive(pid):  # not our child: no wait() possible
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.01)


def nbctl(remote: str, *args: str) -> str:
    out = subprocess.run(
        ["ovn-nbctl", f"--db={remote}", *args], check=True, capture_output=True, text=True
    )
    return out.stdout


def _alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie waiting for whoever reaps it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"
