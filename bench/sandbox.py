"""Sandbox figures: `up --nodes 2` and `down` time, memory, pod-ready latency.

The issue's goals: `up --nodes 2` under 20 s, and (with kovn-cni, later)
p99 pod-ready under 1 s for 200 pods created at once over 2 nodes. Here the
burst runs with the reference bridge + host-local plugins, the sandbox's
default, and one pod created alone in the same sandbox is the baseline.
`up`/`down` are timed as a user runs them (a fresh `python -m sandbox.cli`).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.cpu import processes
from bench.report import Row, percentile, summarize_ms
from sandbox.layout import Layout
from services.common.kube import KubeClient, connect

NAME = "sbxbench"
PODS = "/api/v1/namespaces/default/pods"


async def _connect(kubeconfig: Path) -> KubeClient:
    # Pool sized for the whole burst: every create is in flight at once.
    return KubeClient(await connect(str(kubeconfig), pool_size=256))


def _cli(*args: str) -> float:
    t0 = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "sandbox.cli", *args],
        check=True,
        capture_output=True,
        cwd=str(Path(__file__).resolve().parent.parent),
    )
    return time.monotonic() - t0


def rss_bytes(marker: str) -> tuple[int, int]:
    """(sum of RSS, process count) of live processes whose cmdline has marker."""
    total = count = 0
    for _pid, cmdline, status in processes("status"):
        if marker not in cmdline:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
                count += 1
    return total, count


def _pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }


def _ready(pod: dict[str, Any]) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


async def pods_ready(
    kubeconfig: Path,
    names: list[str],
    body: Callable[[str], dict[str, Any]],
    *,
    rate: float | None = None,
    timeout: float = 120,
) -> dict[str, float]:
    """Create the pods `body(name)` in default (all at once, or `rate` per
    second, evenly spaced); seconds from each create call to Ready seen on a
    watch. The one pod-ready clock of the sandbox, e2e and workloads benches:
    the watch starts before the first create, so no Ready is missed."""
    kube = await _connect(kubeconfig)
    try:
        listing = await kube.get(PODS)
        rv = listing["metadata"]["resourceVersion"]
        started: dict[str, float] = {}
        done: dict[str, float] = {}
        all_ready = asyncio.Event()

        async def watch() -> None:
            async for ev in kube.watch(PODS, rv, bookmarks=False):
                pod = ev["object"]
                n = pod["metadata"]["name"]
                if n in started and n not in done and _ready(pod):
                    done[n] = time.monotonic() - started[n]
                    if len(done) == len(names):
                        all_ready.set()
                        return

        watcher = asyncio.create_task(watch())

        t0 = time.monotonic()

        async def create(i: int, n: str) -> None:
            if rate:
                await asyncio.sleep(max(0.0, t0 + i / rate - time.monotonic()))
            started[n] = time.monotonic()
            await kube.create(PODS, body(n))

        await asyncio.gather(*(create(i, n) for i, n in enumerate(names)))
        await asyncio.wait_for(all_ready.wait(), timeout)
        await watcher
        return done
    finally:
        await kube.close()


async def burst(kubeconfig: Path, names: list[str], rate: float | None = None) -> dict[str, float]:
    """`pods_ready` for plain busybox pods."""
    return await pods_ready(kubeconfig, names, _pod, rate=rate)


async def delete_all(kubeconfig: Path, names: list[str]) -> float:
    """Seconds until every pod is gone (kubelet ran DEL and confirmed)."""
    kube = await _connect(kubeconfig)
    try:
        listing = await kube.get(PODS)
        rv = listing["metadata"]["resourceVersion"]
        left = {p["metadata"]["name"] for p in listing["items"]} & set(names)
        t0 = time.monotonic()
        gone = asyncio.Event()

        async def watch() -> None:
            async for ev in kube.watch(PODS, rv, bookmarks=False):
                if ev["type"] == "DELETED":
                    left.discard(ev["object"]["metadata"]["name"])
                    if not left:
                        gone.set()
                        return

        watcher = asyncio.create_task(watch())
        await asyncio.gather(*(kube.delete(f"{PODS}/{n}") for n in names))
        await asyncio.wait_for(gone.wait(), 120)
        await watcher
        return time.monotonic() - t0
    finally:
        await kube.close()


NOOP_PLUGIN = """#!/bin/sh
cat >/dev/null
[ "$CNI_COMMAND" = ADD ] && echo '{"cniVersion":"1.0.0","ips":[{"address":"10.99.0.1/32"}]}'
exit 0
"""


def use_noop_plugin(lay: Layout) -> None:
    """Point every node's CNI config at a plugin that only prints a result."""
    for n in lay.nodes:
        plugin = lay.cni_bin_dir(n.name) / "sbx-noop"
        plugin.write_text(NOOP_PLUGIN)
        plugin.chmod(0o755)
        conf = {"cniVersion": "1.0.0", "name": "noop", "plugins": [{"type": "sbx-noop"}]}
        for old in lay.cni_conf_dir(n.name).iterdir():
            old.unlink()
        (lay.cni_conf_dir(n.name) / "10-noop.conflist").write_text(json.dumps(conf))


def run(quick: bool = False) -> list[Row]:
    rows: list[Row] = []
    repeats = 2 if quick else 5
    pods = 40 if quick else 200
    ups: list[float] = []
    downs: list[float] = []
    with tempfile.TemporaryDirectory(prefix="sbxbench-") as tmp:
        state = Path(tmp) / "state"
        args = ("--name", NAME, "--state-dir", str(state))
        for i in range(repeats):
            ups.append(_cli("up", "--nodes", "2", "--cni", "bridge", *args))
            if i < repeats - 1:
                downs.append(_cli("down", *args))
        try:
            idle_rss, nproc = rss_bytes(str(state))
            kubeconfig = Path(Layout.load(state).kubeconfig)
            single = [asyncio.run(burst(kubeconfig, [f"solo{i}"]))[f"solo{i}"] for i in range(5)]
            asyncio.run(delete_all(kubeconfig, [f"solo{i}" for i in range(5)]))
            names = [f"burst{i}" for i in range(pods)]
            t0 = time.monotonic()
            ready = asyncio.run(burst(kubeconfig, names))
            burst_wall = time.monotonic() - t0
            busy_rss, _ = rss_bytes(str(state))
            del_wall = asyncio.run(delete_all(kubeconfig, names))
            # The same burst with a plugin that does nothing: what the
            # sandbox itself (API, scheduler, kubelets, netns) costs.
            use_noop_plugin(Layout.load(state))
            noop_names = [f"noop{i}" for i in range(pods)]
            t0 = time.monotonic()
            noop = asyncio.run(burst(kubeconfig, noop_names))
            noop_wall = time.monotonic() - t0
            asyncio.run(delete_all(kubeconfig, noop_names))
        finally:
            downs.append(_cli("down", *args))

    up50, up99 = summarize_ms(ups)
    rows.append(Row("sandbox", "up --nodes 2 (fresh CLI process)", up50, up99,
                    goal="< 20 s", met=max(ups) < 20, note=f"{repeats} runs"))  # fmt: skip
    d50, d99 = summarize_ms(downs)
    rows.append(Row("sandbox", "down (2 nodes)", d50, d99, note=f"{repeats} runs"))
    rows.append(Row("sandbox", "memory, RSS sum, idle 2-node sandbox",
                    rate=idle_rss / 2**20, rate_unit="MiB", note=f"{nproc} processes"))  # fmt: skip
    rows.append(Row("sandbox", f"memory, RSS sum, with {pods} pods",
                    rate=busy_rss / 2**20, rate_unit="MiB"))  # fmt: skip
    s50, s99 = summarize_ms(single)
    base = "pod ready, one pod alone (bridge CNI)"
    rows.append(Row("sandbox", base, s50, s99, note="5 pods one after another"))
    vals = list(ready.values())
    b50, b99 = statistics.median(vals) * 1000, percentile(vals, 99) * 1000
    rows.append(Row("sandbox", f"pod ready, burst of {pods} over 2 nodes (bridge CNI)", b50, b99,
                    rate=pods / burst_wall, rate_unit="pods/s", baseline=base,
                    ratio=b50 / s50 if s50 else None, goal="p99 < 1 s (kovn-cni, later)",
                    met=b99 < 1000))  # fmt: skip
    vals = list(noop.values())
    n50, n99 = statistics.median(vals) * 1000, percentile(vals, 99) * 1000
    rows.append(Row("sandbox", f"pod ready, burst of {pods}, no-op CNI plugin (sandbox overhead)",
                    n50, n99, rate=pods / noop_wall, rate_unit="pods/s",
                    note="API + scheduler + kubelets + netns, no plugin work"))  # fmt: skip
    rows.append(Row("sandbox", f"delete burst of {pods} (DEL x2 + netns removal)",
                    rate=pods / del_wall, rate_unit="pods/s",
                    note=f"{del_wall:.2f} s until all gone"))  # fmt: skip
    return rows


if __name__ == "__main__":
    from bench.report import to_markdown

    print(to_markdown(run(quick="--quick" in sys.argv)))
    os._exit(0)
