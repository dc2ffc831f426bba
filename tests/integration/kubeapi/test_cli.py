"""`python -m sandbox.kubeapi`: the interface the sandbox supervisor uses."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import aiohttp
import pytest

REPO = Path(__file__).resolve().parents[3]


async def test_cli_serves_writes_ready_file_and_exits_zero_on_sigterm(tmp_path: Path) -> None:
    state = tmp_path / "state"
    ready = tmp_path / "ready.json"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sandbox.kubeapi",
        "--state-dir",
        str(state),
        "--listen",
        "127.0.0.1:0",
        "--ready-file",
        str(ready),
        cwd=REPO,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while not ready.exists():  # a daemon's readiness: no event to await
            if proc.returncode is not None or time.monotonic() > deadline:
                pytest.fail("kubeapi did not become ready")
            await asyncio.sleep(0.05)
        info = json.loads(ready.read_text())
        assert info["kubeconfig"] == str(state / "kubeconfig")
        kubeconfig = (state / "kubeconfig").read_text()
        assert "kovn-sandbox" in kubeconfig and info["url"] in kubeconfig
        async with aiohttp.ClientSession() as s, s.get(f"{info['url']}/version") as r:
            assert (await r.json())["major"] == "1"
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
    finally:
        if proc.returncode is None:
            os.kill(proc.pid, signal.SIGKILL)
            await proc.wait()


async def test_cli_rejects_bad_listen(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sandbox.kubeapi",
        "--state-dir",
        str(tmp_path),
        "--listen",
        "nonsense",
        cwd=REPO,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2 and b"--listen" in err
