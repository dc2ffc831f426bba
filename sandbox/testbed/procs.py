"""Helpers for tests and benchmarks that run real processes: the repository
root, waiting for another process's start-up, stopping a child, a free port.

A process in another address space offers nothing to await while it starts
(a ready file appearing, a socket being bound): `poll` is for exactly that,
with a deadline and a message naming what did not happen, and it gives up at
once when the process it waits for has died. Everything else in the tests
(and the benchmarks) awaits events.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def poll(
    condition: Callable[[], object],
    timeout: float,
    what: str,
    *,
    proc: subprocess.Popen[bytes] | None = None,
    interval: float = 0.02,
) -> None:
    """Return once condition() is true; TimeoutError naming `what` after timeout.

    With proc: AssertionError as soon as that process has exited instead.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"exited with {proc.returncode} while waiting for {what}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def wait_ready_file(
    path: Path, timeout: float = 20.0, *, proc: subprocess.Popen[bytes] | None = None
) -> str:
    """The text of a daemon's ready file once it exists (see `poll`)."""
    poll(path.exists, timeout, f"{path} to appear", proc=proc)
    return path.read_text()


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 10) -> None:
    """Signal a child and reap it; SIGKILL if it is still there after timeout."""
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
