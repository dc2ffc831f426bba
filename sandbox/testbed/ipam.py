"""Real processes for ipam tests and bench/ipam.py: an etcd server and
`python -m services.ipam.main`.

Both are started on free ports under a temporary directory and stopped by
their pid (with SIGKILL as a last resort) so that a failing test leaves
nothing running.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from sandbox.testbed.procs import ROOT, free_port, poll, stop

ETCD = "/usr/bin/etcd"


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class EtcdServer:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.peer = free_port()
        self.endpoint = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> EtcdServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / "etcd.log", "wb")  # noqa: SIM115 - lives as long as etcd
        self.proc = subprocess.Popen(
            [
                ETCD,
                "--name", "ipm",
                "--data-dir", str(self.workdir / "data"),
                "--listen-client-urls", f"http://127.0.0.1:{self.port}",
                "--advertise-client-urls", f"http://127.0.0.1:{self.port}",
                "--listen-peer-urls", f"http://127.0.0.1:{self.peer}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer}",
                "--initial-cluster", f"ipm=http://127.0.0.1:{self.peer}",
                "--log-level", "warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        (self.workdir / "etcd.pid").write_text(str(self.proc.pid))
        try:
            poll(lambda: _port_open(self.port), 20, "etcd to listen", proc=self.proc)
        except (TimeoutError, AssertionError):
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None


class IpamProcess:
    """One `python -m services.ipam.main` replica."""

    def __init__(self, workdir: Path, args: list[str], name: str = "ipam") -> None:
        self.workdir = workdir
        self.args = args
        self.name = name
        self.ready = workdir / f"{name}.ready"
        self.proc: subprocess.Popen[bytes] | None = None
        self.target = ""

    def start(self) -> IpamProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ready.unlink(missing_ok=True)
        log = open(self.workdir / f"{self.name}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "services.ipam.main",
                "--listen", "127.0.0.1:0",
                "--ready-file", str(self.ready),
                "--log-format", "json",
                "--log-level", "warning",
                *self.args,
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        log.close()
        (self.workdir / f"{self.name}.pid").write_text(str(self.proc.pid))
        proc = self.proc

        try:
            poll(self.ready.exists, 30, "ipam to serve", proc=proc)
        except AssertionError as err:
            self.stop()
            log_text = (self.workdir / f"{self.name}.log").read_text()[-2000:]
            raise RuntimeError(f"ipam {err}: {log_text}") from None
        except BaseException:
            self.stop()
            raise
        self.target = json.loads(self.ready.read_text())["grpc"]
        return self

    def kill(self) -> None:
        if self.proc is not None:
            stop(self.proc, signal.SIGKILL)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None
