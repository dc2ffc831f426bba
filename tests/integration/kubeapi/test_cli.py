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


async def _start(state: Path, ready: Path) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sandbox.kubeapi",
        "--state-dir",
        str(state),
        "--ready-file",
        str(ready),
        cwd=REPO,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while not ready.exists():  # a daemon's readiness: no event to await
        if proc.returncode is not None or time.monotonic() > deadline:
            pytest.fail("kubeapi did not become ready")
        await asyncio.sleep(0.05)
    return proc, json.loads(ready.read_text())["url"]


async def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    """A write answered before the process dies is on disk (group commit)."""
    state = tmp_path / "state"
    proc, url = await _start(state, tmp_path / "r1")
    try:
        async with aiohttp.ClientSession() as s:
            created = []
            for i in range(50):
                async with s.post(
                    f"{url}/api/v1/namespaces/default/configmaps",
                    json={"metadata": {"name": f"c{i}"}},
                ) as r:
                    assert r.status == 201
                    created.append((await r.json())["metadata"]["resourceVersion"])
        proc.kill()
        await proc.wait()
        proc, url = await _start(state, tmp_path / "r2")
        async with (
            aiohttp.ClientSession() as s,
            s.get(f"{url}/api/v1/namespaces/default/configmaps") as r,
        ):
            body = await r.json()
        assert sorted(c["metadata"]["name"] for c in body["items"]) == sorted(
            f"c{i}" for i in range(50)
        )
        assert int(body["metadata"]["resourceVersion"]) >= int(created[-1])
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 15)


async def test_sigterm_with_open_watches_ends_them_and_exits_zero(tmp_path: Path) -> None:
    proc, url = await _start(tmp_path / "state", tmp_path / "ready")
    try:
        async with aiohttp.ClientSession() as s:
            watches = [
                await s.get(f"{url}/api/v1/pods", params={"watch": "1", "resourceVersion": "0"})
                for _ in range(3)
            ]
            proc.send_signal(signal.SIGTERM)
            for w in watches:
                assert await asyncio.wait_for(w.read(), 10) == b""  # stream ended cleanly
                w.close()
        assert await asyncio.wait_for(proc.wait(), 15) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
