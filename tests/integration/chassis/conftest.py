"""Fixtures that run a chassis service as a real subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sandbox.testbed import procs
from sandbox.testbed.procs import ROOT, wait_ready_file

__all__ = ["ROOT", "Proc", "grpcurl", "start_service", "stop"]
GRPCURL = str(Path(sys.executable).parent / "grpcurl")


@dataclass
class Proc:
    popen: subprocess.Popen[bytes]
    addresses: dict[str, str]
    tmp: Path
    stderr_path: Path
    extra: dict[str, str] = field(default_factory=dict)

    def stderr(self) -> str:
        return self.stderr_path.read_text()


def start_service(argv: list[str], tmp: Path, name: str = "svc") -> Proc:
    ready = tmp / f"{name}.ready"
    stderr_path = tmp / f"{name}.log"
    popen = subprocess.Popen(
        [*argv, "--ready-file", str(ready), "--log-format", "json"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=stderr_path.open("wb"),
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        addresses: dict[str, str] = json.loads(wait_ready_file(ready, proc=popen))
    except (AssertionError, TimeoutError) as err:
        procs.stop(popen, signal.SIGKILL)
        raise AssertionError(f"{err}\n{stderr_path.read_text()}") from None
    return Proc(popen, addresses, tmp, stderr_path)


def stop(proc: Proc) -> None:
    procs.stop(proc.popen, signal.SIGKILL)


@pytest.fixture
def sleeper(tmp_path: Path) -> Iterator[Proc]:
    proc = start_service(
        [
            sys.executable, "-m", "tests.integration.chassis.sleeper",
            "--listen", "127.0.0.1:0",
            "--socket", str(tmp_path / "sleeper.sock"),
            "--metrics", "127.0.0.1:0",
            "--grace-period", "10",
        ],
        tmp_path,
    )  # fmt: skip
    yield proc
    stop(proc)


def grpcurl(*args: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GRPCURL, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
