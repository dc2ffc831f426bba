"""Workloads in the sandbox: pods that run processes, probes, Deployments.

A two-node kovn sandbox whose kubelets run containers as processes and
whose controllers (ReplicaSet, Deployment, EndpointSlice, ...) act on what
is created. Measured:

- pod start to Ready for a pod whose `httpd` has a tcpSocket readinessProbe,
  one pod alone and a burst of 100, next to the same pod without a probe in
  the same run (the probe's own cost is the difference);
- the sandbox at rest with every controller running: CPU per component over
  a quiet interval, and the memory of all its processes;
- a Deployment scaled from 0 to 100 replicas until all 100 are Ready.

    python -m bench workloads [--quick]
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import cpu
from bench.report import Row, percentile, summarize_ms
from bench.sandbox import _connect, delete_all, pods_ready, rss_bytes
from sandbox import cluster, components

SECTION = "workloads"
DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"
IDLE_SECONDS = 10.0


def _container(root: Path, probe: bool) -> dict[str, Any]:
    c: dict[str, Any] = {
        "name": "httpd",
        "image": "busybox",
        "command": ["busybox", "httpd", "-f", "-p", "80", "-h", str(root)],
        "ports": [{"name": "http", "containerPort": 80}],
    }
    if probe:
        c["readinessProbe"] = {"tcpSocket": {"port": "http"}, "periodSeconds": 1}
    return c


def _pod(name: str, root: Path, probe: bool) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": "workloads"}},
        "spec": {"containers": [_container(root, probe)], "terminationGracePeriodSeconds": 1},
    }


async def _pods_ready(kubeconfig: Path, names: list[str], root: Path, probe: bool) -> list[float]:
    """Create the pods at once; seconds from each create call to Ready on a watch."""
    done = await pods_ready(kubeconfig, names, lambda n: _pod(n, root, probe), timeout=180)
    return [done[n] for n in names]


async def _scale(kubeconfig: Path, root: Path, replicas: int) -> float:
    """A Deployment at 0 replicas scaled to `replicas`: seconds until all are Ready."""
    kube = await _connect(kubeconfig)
    name = "bench-web"
    labels = {"app": name}
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [_container(root, probe=True)],
                    "terminationGracePeriodSeconds": 1,
                },
            },
        },
    }
    try:
        created = await kube.create(DEPLOYMENTS, body)
        rv = created["metadata"]["resourceVersion"]
        t0 = time.monotonic()
        await kube.merge_patch(f"{DEPLOYMENTS}/{name}", {"spec": {"replicas": replicas}})

        async def all_ready() -> None:
            async for ev in kube.watch(DEPLOYMENTS, rv, bookmarks=False):
                obj = ev["object"]
                if obj["metadata"]["name"] == name:
                    status = obj.get("status") or {}
                    if status.get("readyReplicas", 0) >= replicas:
                        return

        await asyncio.wait_for(all_ready(), 300)
        took = time.monotonic() - t0
        await kube.delete(f"{DEPLOYMENTS}/{name}")
        return took
    finally:
        await kube.close()


def run(quick: bool = False) -> list[Row]:
    burst_n = 20 if quick else 100
    solo_n = 3 if quick else 5
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="wlbench-") as tmp:
        state = Path(tmp) / "state"
        root = Path(tmp) / "www"
        root.mkdir()
        (root / "index.html").write_text("bench\n")
        lay = None
        try:
            lay = cluster.up(f"wlb{secrets.token_hex(2)}", state, 2, "kovn", cooldown=1.0)
            kc = Path(lay.kubeconfig)
            asyncio.run(_pods_ready(kc, ["warm"], root, probe=True))
            asyncio.run(delete_all(kc, ["warm"]))
            plain, probed = [], []
            for i in range(solo_n):  # interleaved, so drift hits both alike
                plain += asyncio.run(_pods_ready(kc, [f"plain{i}"], root, probe=False))
                probed += asyncio.run(_pods_ready(kc, [f"probe{i}"], root, probe=True))
            asyncio.run(delete_all(kc, [f"plain{i}" for i in range(solo_n)]
                                   + [f"probe{i}" for i in range(solo_n)]))  # fmt: skip
            names = [f"pburst{i}" for i in range(burst_n)]
            burst = asyncio.run(_pods_ready(kc, names, root, probe=True))
            asyncio.run(delete_all(kc, names))
            # At rest: every controller, kubelet and kovn service running, nothing changing.
            before = cpu.sample(str(state))
            time.sleep(IDLE_SECONDS)  # a measurement interval, not a wait for state
            idle_by, idle_busy = cpu.spent(before, cpu.sample(str(state)))
            rss, procs = rss_bytes(str(state))
            scale = asyncio.run(_scale(kc, root, burst_n))
        finally:
            if lay is not None:
                components.stop(lay)
            cluster.down(state)

    p50, p99 = summarize_ms(plain)
    base = "pod start to Ready, one pod, httpd without a probe"
    rows.append(Row(SECTION, base, p50, p99, note=f"{solo_n} pods one after another"))
    q50, q99 = summarize_ms(probed)
    rows.append(Row(SECTION, "pod start to Ready, one pod, httpd with a tcpSocket readinessProbe",
                    q50, q99, baseline=base, ratio=q50 / p50 if p50 else None,
                    note=f"{solo_n} pods, interleaved with the baseline; periodSeconds 1, "
                    "no initial delay"))  # fmt: skip
    rows.append(Row(SECTION, f"pod start to Ready, burst of {burst_n}, readinessProbe",
                    statistics.median(burst) * 1000, percentile(burst, 99) * 1000,
                    baseline=base, ratio=statistics.median(burst) * 1000 / p50 if p50 else None,
                    note="create call to Ready on a watch, all created at once"))  # fmt: skip
    rows.append(Row(SECTION, f"Deployment scaled 0 -> {burst_n}, all Ready", rate=scale,
                    rate_unit="s", note="scale patch to readyReplicas on a watch; "
                    "ReplicaSet creates, scheduler, kubelets, probes"))  # fmt: skip
    rows.append(Row(SECTION, "sandbox at rest, controllers running: CPU, whole sandbox",
                    rate=sum(idle_by.values()) / IDLE_SECONDS * 100, rate_unit="% of one CPU",
                    note=f"over {IDLE_SECONDS:g} s with nothing changing; the machine as a "
                    f"whole: {idle_busy / IDLE_SECONDS * 100:.0f}%"))  # fmt: skip
    for name, cpu_s in sorted(idle_by.items(), key=lambda kv: -kv[1]):
        rows.append(Row(SECTION, f"sandbox at rest: CPU of {name}",
                        rate=cpu_s / IDLE_SECONDS * 100, rate_unit="% of one CPU"))  # fmt: skip
    rows.append(Row(SECTION, "sandbox at rest: memory, RSS sum", rate=rss / 2**20,
                    rate_unit="MiB", note=f"{procs} processes"))  # fmt: skip
    return rows


if __name__ == "__main__":
    from bench.report import to_markdown

    print(to_markdown(run()))
