"""Controller at scale: 10,000 pods on 200 nodes across 50 subnets.

Everything is real except the data plane (none is needed: the controller's
job ends at NB rows and pod annotations): OVN central, the embedded
Kubernetes API and ipam run as their own processes, the controller too (so
its peak memory is its own). The benchmark creates the pods with 32
concurrent clients and watches for the controller's annotations, then
restarts the controller and measures how long it takes to re-check
everything and how many NB rows and API objects it wrote doing so (goal: 0).

Baseline in the same run: the same number of pod creates plus one
annotation patch per pod issued by the benchmark itself against the same
API — the API work the controller cannot avoid.

    python -m bench controller [--quick]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bench.report import Row, summarize_ms
from sandbox.ovn import OvnCentral
from services.common.kube import KubeClient, KubeError, connect, resource_path
from services.common.tasks import cancel_and_wait

ROOT = Path(__file__).resolve().parents[1]
CLIENTS = 32


def _wait_file(path: Path, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not path.exists():  # a daemon's ready file: no event to wait on
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{proc.args!r} did not become ready")
        time.sleep(0.05)
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT
    )


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _phases(log: Path) -> str:
    """Start-up phases from the controller's JSON log, for the report."""
    found: dict[str, float] = {}
    names = {"nb resync": "resync", "leading": "lead", "every object reconciled once": "all"}
    for line in log.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        event = str(rec.get("event", ""))
        if event == "take-over phases":
            for key, value in rec.items():
                if isinstance(value, int | float) and key != "timestamp":
                    found[key] = float(value)
            continue
        short = names.get(event.split(" since")[0])
        if short and "seconds" in rec:
            found[short] = float(rec["seconds"])
    return ", ".join(f"{k} {v:.2f} s" for k, v in found.items())


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _metric(session: aiohttp.ClientSession, url: str, name: str) -> float:
    async with session.get(url) as resp:
        text = await resp.text()
    total = 0.0
    found = False
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith(name + "_"):
            m = re.match(r"^\S+\s+(\S+)$", line)
            if m:
                total += float(m.group(1))
                found = True
    return total if found else -1.0


async def _pool(n: int, fn: Callable[[int], Awaitable[object]]) -> None:
    """Run fn(i) for i in range(n) with CLIENTS concurrent workers."""
    it = iter(range(n))

    async def worker() -> None:
        for i in it:
            await fn(i)

    await asyncio.gather(*(worker() for _ in range(CLIENTS)))


class _Annotated:
    """Watches pods; records when each first shows the controller's annotation."""

    def __init__(self, kube: KubeClient, total: int, rv: str) -> None:
        self.kube = kube
        self.total = total
        self.rv = rv
        self.seen: dict[str, float] = {}
        self.done = asyncio.Event()

    async def run(self) -> None:
        while not self.done.is_set():
            async for ev in self.kube.watch("/api/v1/pods", self.rv, timeout_seconds=600):
                obj = ev.get("object") or {}
                meta = obj.get("metadata") or {}
                self.rv = meta.get("resourceVersion", self.rv)
                if ev.get("type") not in ("ADDED", "MODIFIED"):
                    continue
                if (meta.get("annotations") or {}).get("kovn.io/allocated") == "true":
                    key = f"{meta['namespace']}/{meta['name']}"
                    if key not in self.seen:
                        self.seen[key] = time.perf_counter()
                        if len(self.seen) >= self.total:
                            self.done.set()
                            return


@dataclass
class _Stack:
    """What a controller under test talks to: OVN NB, the API server, ipam."""

    ovn: OvnCentral
    kubeconfig: str
    ipam: str


@contextlib.asynccontextmanager
async def _stack(tmp: Path) -> AsyncIterator[_Stack]:
    ovn = OvnCentral(tmp / "ovn")
    procs: list[subprocess.Popen[bytes]] = []
    await asyncio.to_thread(ovn.start)
    try:
        kapi = _spawn(
            [
                "-m",
                "sandbox.kubeapi",
                "--state-dir",
                str(tmp / "kubeapi"),
                "--listen",
                "127.0.0.1:0",
                "--ready-file",
                str(tmp / "kubeapi.ready"),
            ],
            tmp / "kubeapi.log",
        )
        procs.append(kapi)
        kready = _wait_file(tmp / "kubeapi.ready", kapi)
        ipam = _spawn(
            [
                "-m",
                "services.ipam.main",
                "--socket",
                str(tmp / "ipam.sock"),
                "--sqlite-path",
                str(tmp / "ipam.db"),
                "--ready-file",
                str(tmp / "ipam.ready"),
                "--log-level",
                "warning",
            ],
            tmp / "ipam.log",
        )
        procs.append(ipam)
        _wait_file(tmp / "ipam.ready", ipam)
        yield _Stack(ovn, str(kready["kubeconfig"]), f"unix:{tmp / 'ipam.sock'}")
    finally:
        for p in reversed(procs):
            _stop(p)
        await asyncio.to_thread(ovn.stop)


def _controller(tmp: Path, env: _Stack, tag: str) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    ready = tmp / f"controller-{tag}.ready"
    proc = _spawn(
        [
            "-m",
            "services.controller.main",
            "--listen",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
            "--ready-file",
            str(ready),
            "--kubeconfig",
            env.kubeconfig,
            "--ipam",
            env.ipam,
            "--nb",
            env.ovn.nb_remote,
            "--identity",
            "bench",
            "--log-level",
            "info",
            "--log-format",
            "json",
            "--resync-period",
            "0",
            "--gc-period",
            "0",
            "--lease-duration",
            "15",
            "--renew-deadline",
            "10",
            "--retry-period",
            "1",
        ],
        tmp / f"controller-{tag}.log",
    )
    return proc, _wait_file(ready, proc)


async def _wait_metric(
    session: aiohttp.ClientSession,
    url: str,
    name: str,
    pred: Callable[[float], bool],
    timeout: float,
) -> float:
    """Another process's state, visible only through /metrics: poll with a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = await _metric(session, url, name)
        if pred(value):
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} stayed at {value}")
        await asyncio.sleep(0.1)


async def _run(quick: bool) -> list[Row]:
    n_pods, n_nodes, n_subnets = (1000, 20, 10) if quick else (10_000, 200, 50)
    tmp = Path(tempfile.mkdtemp(prefix="kctl-bench-"))
    rows: list[Row] = []
    controller: subprocess.Popen[bytes] | None = None
    try:
        async with _stack(tmp) as env:
            kube = KubeClient(await connect(env.kubeconfig, pool_size=CLIENTS * 2))
            session = kube.api.rest_client.pool_manager
            try:
                crd_path = resource_path("apiextensions.k8s.io", "v1", "customresourcedefinitions")
                for f in sorted((ROOT / "manifests" / "crds").glob("*.kovn.io.yaml")):
                    await kube.create(crd_path, yaml.safe_load(f.read_text()))
                for i in range(n_subnets):
                    await kube.create("/api/v1/namespaces", {"metadata": {"name": f"ns-{i}"}})
                    await kube.create(
                        "/apis/kovn.io/v1/subnets",
                        {
                            "apiVersion": "kovn.io/v1",
                            "kind": "Subnet",
                            "metadata": {"name": f"sub-{i}"},
                            "spec": {
                                "cidrBlock": f"10.{100 + i}.0.0/16",
                                "namespaces": [f"ns-{i}"],
                            },
                        },
                    )

                async def node(i: int) -> None:
                    await kube.create("/api/v1/nodes", {"metadata": {"name": f"node-{i}"}})

                await _pool(n_nodes, node)

                # Baseline: the API work alone (create + one patch per pod) in a spare namespace.
                await kube.create("/api/v1/namespaces", {"metadata": {"name": "baseline"}})
                base_lat: list[float] = []

                async def base(i: int) -> None:
                    t = time.perf_counter()
                    await kube.create(
                        "/api/v1/namespaces/baseline/pods",
                        {
                            "metadata": {"name": f"b{i}"},
                            "spec": {"containers": [{"name": "c", "image": "x"}]},
                        },
                    )
                    await kube.merge_patch(
                        f"/api/v1/namespaces/baseline/pods/b{i}",
                        {"metadata": {"annotations": {"kovn.io/allocated": "true"}}},
                    )
                    base_lat.append(time.perf_counter() - t)

                t0 = time.perf_counter()
                await _pool(n_pods, base)
                base_s = time.perf_counter() - t0
                base_rate = n_pods / base_s
                p50, p99 = summarize_ms(base_lat)
                rows.append(
                    Row(
                        "controller",
                        f"baseline: API create+patch of {n_pods} pods, {CLIENTS} clients",
                        p50,
                        p99,
                        n_pods / base_s,
                        "pods/s",
                        note=f"{base_s:.1f} s",
                    )
                )
                await kube.request(
                    "DELETE", "/api/v1/namespaces/baseline/pods", request_timeout=300
                )

                controller, ready = _controller(tmp, env, "1")
                murl = f"http://{ready['metrics']}/metrics"
                await _wait_metric(
                    session, murl, "kovn_controller_takeover_seconds", lambda v: v > 0, 120
                )
                _, rv = await kube.list("/api/v1/namespaces")
                watcher = _Annotated(kube, n_pods, rv)
                watch_task = asyncio.create_task(watcher.run())
                created: dict[str, float] = {}

                async def pod(i: int) -> None:
                    ns, name = f"ns-{i % n_subnets}", f"pod-{i}"
                    await kube.create(
                        f"/api/v1/namespaces/{ns}/pods",
                        {
                            "metadata": {"name": name},
                            "spec": {
                                "nodeName": f"node-{i % n_nodes}",
                                "containers": [{"name": "c", "image": "x"}],
                            },
                        },
                    )
                    created[f"{ns}/{name}"] = time.perf_counter()

                t0 = time.perf_counter()
                await _pool(n_pods, pod)
                t_created = time.perf_counter() - t0
                await asyncio.wait_for(watcher.done.wait(), 600)
                took = time.perf_counter() - t0
                await cancel_and_wait(watch_task)
                lat = [watcher.seen[k] - created[k] for k in created if k in watcher.seen]
                p50, p99 = summarize_ms(lat)
                peak = _peak_rss_mib(controller.pid)
                ports = env.ovn.nbctl(
                    "--bare", "--columns=name", "list", "Logical_Switch_Port"
                ).split()
                n_ports = sum(1 for p in ports if p.startswith("pod-"))
                goal_s = 60.0 * n_pods / 10_000
                rows.append(
                    Row(
                        "controller",
                        f"{n_pods} pods / {n_nodes} nodes / {n_subnets} subnets: all annotated",
                        p50,
                        p99,
                        n_pods / took,
                        "pods/s",
                        baseline="baseline: API create+patch",
                        ratio=(n_pods / took) / base_rate,
                        goal=f"< {goal_s:.0f} s",
                        met=took < goal_s and n_ports == n_pods,
                        note=f"{took:.1f} s total (creates took {t_created:.1f} s); "
                        f"{n_ports} ports; pod latency = create to annotation seen",
                    )
                )
                rows.append(
                    Row("controller", "controller peak memory (VmHWM)", note=f"{peak:.0f} MiB")
                )
                # Let the first controller finish what it has in hand (egress
                # address sets trail the pods) before restarting it.
                await _wait_metric(
                    session, murl, "kovn_controller_queue_depth", lambda v: v == 0, 120
                )
                writes_before = await _metric(
                    session, murl, "kovn_controller_nb_rows_written_total"
                )
                _stop(controller)

                t0 = time.perf_counter()
                controller, ready = _controller(tmp, env, "2")
                murl = f"http://{ready['metrics']}/metrics"
                takeover = await _wait_metric(
                    session, murl, "kovn_controller_takeover_seconds", lambda v: v > 0, 120
                )
                resync_s = time.perf_counter() - t0
                phases = _phases(tmp / "controller-2.log")
                nb_writes = await _metric(session, murl, "kovn_controller_nb_rows_written_total")
                kube_writes = await _metric(session, murl, "kovn_controller_kube_writes_total")
                rows.append(
                    Row(
                        "controller",
                        f"restart resync ({n_pods} pods)",
                        rate=None,
                        goal="< 10 s, 0 writes",
                        met=resync_s < 10 and nb_writes == 0,
                        note=f"{resync_s:.1f} s from process start "
                        f"({takeover:.1f} s from Lease won); "
                        f"NB rows written: {nb_writes:.0f} (first run: {writes_before:.0f}); "
                        f"API writes: {max(kube_writes, 0):.0f}; phases: {phases}",
                    )
                )
            finally:
                _stop(controller)
                with contextlib.suppress(KubeError):
                    await kube.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def run(quick: bool = False) -> list[Row]:
    return asyncio.run(_run(quick))


if __name__ == "__main__":
    from bench.report import to_markdown

    print(to_markdown(run("--quick" in sys.argv), "controller"))
    os._exit(0)
