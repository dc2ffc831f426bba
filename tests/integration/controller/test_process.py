"""`kovn controller serve` as an operator meets it: a process, grpcurl, SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sandbox.testbed.procs import ROOT, wait_ready_file
from tests.integration.controller.harness import Cluster, running_cluster

BIN = Path(sys.executable).parent


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with running_cluster(tmp_path) as c:
        yield c


def _grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "grpcurl"), "-plaintext", "-max-time", "10", *args],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


async def test_grpcurl_lists_describes_and_checks_health_then_sigterm_exits_0(
    cluster: Cluster, tmp_path: Path
) -> None:
    ready = tmp_path / "controller.ready"
    proc = await asyncio.to_thread(
        subprocess.Popen,
        [str(BIN / "kovn"), "controller", "serve", "--listen", "127.0.0.1:0",
         "--ready-file", str(ready), "--kubeconfig", str(cluster.kubeapi.kubeconfig_path),
         "--ipam", cluster.ipam.target, "--nb", cluster.ovn.nb_remote, "--identity", "solo",
         "--lease-namespace", "kube-system", "--log-level", "warning"],
        cwd=ROOT, stdout=(tmp_path / "controller.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        await asyncio.to_thread(wait_ready_file, ready)
        target = json.loads(ready.read_text())["grpc"]

        listed = await asyncio.to_thread(_grpcurl, target, "list")
        assert listed.returncode == 0, listed.stderr
        assert {"kovn.controller.v1.Controller", "grpc.health.v1.Health"} <= set(
            listed.stdout.split()
        )
        described = await asyncio.to_thread(
            _grpcurl, target, "describe", "kovn.controller.v1.Controller"
        )
        assert "rpc GetPodNetwork" in described.stdout, described.stderr

        health = await asyncio.to_thread(
            _grpcurl, "-d", '{"service": "kovn.controller.v1.Controller"}',
            target, "grpc.health.v1.Health/Check",
        )  # fmt: skip
        assert json.loads(health.stdout) == {"status": "SERVING"}, health.stderr

        missing = await asyncio.to_thread(
            _grpcurl, "-d", '{"namespace": "default", "name": "nope"}',
            target, "kovn.controller.v1.Controller/GetPodNetwork",
        )  # fmt: skip
        assert missing.returncode != 0
        assert "Code: NotFound" in missing.stdout + missing.stderr, missing.stderr

        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
