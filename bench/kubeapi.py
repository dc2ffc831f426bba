"""Benchmark of the sandbox's embedded Kubernetes API server.

The controller benchmark creates 10,000 pods on 200 nodes through this API
with concurrent clients and watches them, so this measures what that needs:
creates/s and patches/s with 32 concurrent clients, list latency over 10k
pods (whole list and one node's field-selected share), and how long a
change takes to reach an open watch. The server runs as its own process
(`python -m sandbox.kubeapi`), as in the sandbox; clients speak raw HTTP
with aiohttp so the client library's own cost does not hide the server's.
Baseline in the same run: GET /version, the HTTP floor of the server.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from bench.report import Row, summarize_ms
from services.common.tasks import cancel_and_wait

CLIENTS = 32
REPO = Path(__file__).resolve().parent.parent


def _pod(i: int, nodes: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"pod-{i}", "labels": {"app": f"app-{i % 50}"}},
        "spec": {
            "nodeName": f"node-{i % nodes}",
            "containers": [{"name": "c", "image": "registry.local/busybox:1.36"}],
        },
    }


async def _pool(n: int, fn: Callable[[int], Awaitable[object]]) -> tuple[float, list[float]]:
    """Run fn(i) for i in range(n) on CLIENTS workers; (wall seconds, latencies)."""
    lat: list[float] = []
    it = iter(range(n))

    async def worker() -> None:
        for i in it:
            t0 = time.perf_counter()
            await fn(i)
            lat.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CLIENTS)))
    return time.perf_counter() - t0, lat


def _write_row(case: str, n: int, wall: float, lat: list[float], unit: str) -> Row:
    """A write benchmark's row, held to the issue's >= 1000/s."""
    p50, p99 = summarize_ms(lat)
    rate = n / wall
    return Row("kubeapi", case, p50, p99, rate, unit, goal=f">= 1000 {unit}", met=rate >= 1000)


async def _send_patch(s: aiohttp.ClientSession, url: str, body: object, kind: str) -> None:
    headers = {"Content-Type": f"application/{kind}+json"}
    async with s.patch(url, data=json.dumps(body), headers=headers) as r:
        if r.status != 200:
            raise RuntimeError(f"patch: {r.status} {await r.text()}")
        await r.read()


async def _measure(url: str, pods: int, nodes: int, repeats: int) -> list[Row]:
    rows: list[Row] = []
    conn = aiohttp.TCPConnector(limit=CLIENTS * 2)
    async with aiohttp.ClientSession(connector=conn) as s:
        ns_url = f"{url}/api/v1/namespaces/default/pods"

        async def version(_: int) -> None:
            async with s.get(f"{url}/version") as r:
                await r.read()

        wall, lat = await _pool(pods, version)
        p50, p99 = summarize_ms(lat)
        rows.append(
            Row(
                "kubeapi",
                f"GET /version, {CLIENTS} clients (HTTP floor)",
                p50,
                p99,
                pods / wall,
                "req/s",
                note="baseline",
            )
        )

        async def create(i: int) -> None:
            async with s.post(ns_url, json=_pod(i, nodes)) as r:
                if r.status != 201:
                    raise RuntimeError(f"create: {r.status} {await r.text()}")
                await r.read()

        wall, lat = await _pool(pods, create)
        rows.append(
            _write_row(f"create pod, {CLIENTS} clients, {pods} pods", pods, wall, lat, "creates/s")
        )

        async def patch(i: int) -> None:
            status = {"phase": "Running", "podIP": f"10.16.{i // 250}.{i % 250 + 1}"}
            await _send_patch(s, f"{ns_url}/pod-{i}/status", {"status": status}, "merge-patch")

        wall, lat = await _pool(pods, patch)
        case = f"patch pod status (merge), {CLIENTS} clients"
        rows.append(_write_row(case, pods, wall, lat, "patches/s"))

        async def annotate(i: int) -> None:
            body = {"metadata": {"annotations": {"kovn.io/ip_address": f"10.16.0.{i % 250}"}}}
            await _send_patch(s, f"{ns_url}/pod-{i}", body, "strategic-merge-patch")

        wall, lat = await _pool(pods, annotate)
        case = f"patch pod annotation (strategic), {CLIENTS} clients"
        rows.append(_write_row(case, pods, wall, lat, "patches/s"))

        lat = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            async with s.get(f"{url}/api/v1/pods") as r:
                body = await r.read()
            lat.append(time.perf_counter() - t0)
        p50, p99 = summarize_ms(lat)
        count = len(json.loads(body)["items"])
        rows.append(
            Row("kubeapi", f"list all pods ({count})", p50, p99, note=f"{len(body) / 1e6:.1f} MB")
        )

        lat = []
        for i in range(repeats):
            t0 = time.perf_counter()
            async with s.get(
                f"{url}/api/v1/pods", params={"fieldSelector": f"spec.nodeName=node-{i % nodes}"}
            ) as r:
                await r.read()
            lat.append(time.perf_counter() - t0)
        p50, p99 = summarize_ms(lat)
        rows.append(
            Row("kubeapi", f"list one node's pods (fieldSelector, {pods // nodes})", p50, p99)
        )

        # Watch delivery: one watch on all pods, changes made one at a time.
        async with s.get(f"{url}/api/v1/pods", params={"limit": "1"}) as r:
            rv = (await r.json())["metadata"]["resourceVersion"]
        lat = []
        async with s.get(f"{url}/api/v1/pods", params={"watch": "1", "resourceVersion": rv}) as w:
            for i in range(repeats * 10):
                probe = json.dumps({"metadata": {"labels": {"probe": str(i)}}})
                t0 = time.perf_counter()
                async with s.patch(
                    f"{ns_url}/pod-{i}",
                    data=probe,
                    headers={"Content-Type": "application/merge-patch+json"},
                ) as r:
                    await r.read()
                line = await w.content.readline()
                lat.append(time.perf_counter() - t0)
                assert json.loads(line)["type"] == "MODIFIED"
        p50, p99 = summarize_ms(lat)
        rows.append(
            Row(
                "kubeapi",
                "patch -> watch event received (1 watcher)",
                p50,
                p99,
                note="includes the patch round trip and commit",
            )
        )
        rows.extend(await _node_watches(s, url, ns_url, pods, nodes, repeats))
        rows.extend(await _client_library(url, pods // 5))
    base = rows[0].rate
    for row in rows[1:]:
        if row.rate is not None and base:
            row.baseline, row.ratio = "GET /version", row.rate / base
    return rows


async def _node_watches(
    s: aiohttp.ClientSession, url: str, ns_url: str, pods: int, nodes: int, repeats: int
) -> list[Row]:
    """One watch per node (fieldSelector spec.nodeName), as node agents hold:
    a change must reach its node's watch while every other watch filters it."""
    async with s.get(f"{url}/api/v1/pods", params={"limit": "1"}) as r:
        rv = (await r.json())["metadata"]["resourceVersion"]
    streams = []
    # Watches hold their connections: their own pool, unlimited.
    ws = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    try:
        for n in range(nodes):
            params = {
                "watch": "1",
                "resourceVersion": rv,
                "fieldSelector": f"spec.nodeName=node-{n}",
            }
            streams.append(await ws.get(f"{url}/api/v1/pods", params=params))
        lat = []
        for i in range(repeats * 10):
            probe = json.dumps({"metadata": {"labels": {"node-probe": str(i)}}})
            t0 = time.perf_counter()
            async with s.patch(
                f"{ns_url}/pod-{i}",
                data=probe,
                headers={"Content-Type": "application/merge-patch+json"},
            ) as r:
                await r.read()
            line = await streams[i % nodes].content.readline()
            lat.append(time.perf_counter() - t0)
            assert json.loads(line)["object"]["metadata"]["name"] == f"pod-{i}"
        # Throughput while every watch (plus one on all pods) is consumed.
        params = {"watch": "1", "resourceVersion": str(int(rv) + repeats * 10)}
        streams.append(await ws.get(f"{url}/api/v1/pods", params=params))
        received = [0]
        all_in = asyncio.Event()

        async def drain(st: aiohttp.ClientResponse) -> None:
            async for _ in st.content:
                received[0] += 1
                if received[0] >= 2 * pods:  # each patch: its node's watch + the all-pods one
                    all_in.set()

        readers = [asyncio.create_task(drain(st)) for st in streams]

        async def patch(i: int) -> None:
            body = {"status": {"conditions": [{"type": "Ready", "status": str(i)}]}}
            await _send_patch(s, f"{ns_url}/pod-{i}/status", body, "merge-patch")

        wall, plat = await _pool(pods, patch)
        await asyncio.wait_for(all_in.wait(), 30)
        await asyncio.gather(*(cancel_and_wait(t) for t in readers))
    finally:
        for st in streams:
            st.close()
        await ws.close()
    p50, p99 = summarize_ms(lat)
    case = f"patch pod status, {CLIENTS} clients, {nodes} node watches + 1 all-pods watch"
    loaded = _write_row(case, pods, wall, plat, "patches/s")
    loaded.note = f"{received[0]} watch lines read by the client"
    return [
        Row(
            "kubeapi",
            f"patch -> event on its node's watch ({nodes} node watches)",
            p50,
            p99,
            note="includes the patch round trip and commit",
        ),
        loaded,
    ]


async def _client_library(url: str, n: int) -> list[Row]:
    """Creates through kubernetes-asyncio, the client kovn uses (its model
    (de)serialisation costs client CPU; this is what a kovn service sees)."""
    from kubernetes_asyncio import client

    cfg = client.Configuration()
    cfg.host = url
    async with client.ApiClient(cfg) as api:
        api.rest_client.pool_manager.connector._limit = CLIENTS * 2
        core = client.CoreV1Api(api)
        await core.create_namespace({"metadata": {"name": "bench-lib"}})  # type: ignore[arg-type]

        async def create(i: int) -> None:
            await core.create_namespaced_pod("bench-lib", _pod(i, 200))  # type: ignore[arg-type]

        wall, lat = await _pool(n, create)
    p50, p99 = summarize_ms(lat)
    return [
        Row(
            "kubeapi",
            f"create pod via kubernetes-asyncio, {CLIENTS} clients, {n} pods",
            p50,
            p99,
            n / wall,
            "creates/s",
            note="client-bound: one client process",
        )
    ]


def run(quick: bool = False) -> list[Row]:
    pods, nodes, repeats = (2000, 40, 5) if quick else (10_000, 200, 20)
    with tempfile.TemporaryDirectory(prefix="kapi-bench-") as tmp:
        ready = Path(tmp) / "ready"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sandbox.kubeapi",
                "--state-dir",
                tmp,
                "--ready-file",
                str(ready),
                "--log-level",
                "warning",
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 30
            while not ready.exists():  # no event to wait on: poll the ready file
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"kubeapi did not start: {proc.stderr.read() if proc.stderr else ''!r}"
                    )
                time.sleep(0.05)
            url = json.loads(ready.read_text())["url"]
            return asyncio.run(_measure(url, pods, nodes, repeats))
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()


if __name__ == "__main__":
    from bench.report import to_markdown

    print(to_markdown(run(quick="--quick" in sys.argv)))
