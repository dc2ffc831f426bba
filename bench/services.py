"""Services at scale: N Services x 5 endpoints into the NB, slice changes, a restart.

Like bench/controller.py, everything but the data plane is real: OVN central
(NB + northd), the embedded Kubernetes API and ipam as their own processes,
and one controller. The benchmark creates N selector-less Services, each
with one EndpointSlice of 5 endpoints (written as the EndpointSlice
controller would), and measures until every load balancer is in the NB;
then how long an EndpointSlice change takes to be committed to the NB (seen
from the benchmark's side by an OVSDB monitor on Load_Balancer, p50/p99);
then a controller restart (resync time, NB rows written: goal 0) and the NB
database's size.

Baseline in the same run: the same N Services as kube-proxy's nftables mode
would write them (a verdict map from VIP . port to a chain per Service
doing a numgen-based dnat to its endpoints), loaded with one `nft -f` in a
throwaway network namespace, and one Service's endpoints changed.

    python -m bench services [--quick]
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.controller import _controller, _metric, _pool, _stack, _stop, _wait_metric
from bench.report import Row, summarize_ms
from services.common.kube import KubeClient, KubeError, connect

ENDPOINTS = 5
NS = "bench"


def _vip(i: int) -> str:
    return str(ipaddress.ip_address("10.96.0.0") + 1000 + i)


def _ep_ip(i: int, j: int) -> str:
    return str(ipaddress.ip_address("10.16.0.0") + 16 + i * ENDPOINTS + j)


def _service(i: int) -> dict[str, Any]:
    return {
        "metadata": {"name": f"s{i}", "namespace": NS},
        "spec": {
            "clusterIP": _vip(i),
            "clusterIPs": [_vip(i)],
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
        },
    }


def _slice(i: int, ips: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"s{i}-x",
            "namespace": NS,
            "labels": {
                "kubernetes.io/service-name": f"s{i}",
                "endpointslice.kubernetes.io/managed-by": "bench.kovn.io",
            },
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }


SLICES = f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices"


class _Monitor:
    """`ovsdb-client monitor` on Load_Balancer vips: when a text first shows up."""

    def __init__(self, remote: str) -> None:
        self.proc = subprocess.Popen(
            # Line-buffered: a pipe would hold updates back in stdio buffers.
            [
                "stdbuf",
                "-oL",
                "ovsdb-client",
                "monitor",
                remote,
                "OVN_Northbound",
                "Load_Balancer",
                "vips",
            ],
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def wait_for(self, needle: str, timeout: float = 10.0) -> float:
        """perf_counter() when a line containing needle was read."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{needle!r} not seen in the NB")
            try:
                stamp, line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if needle in line:
                return stamp

    def _read(self) -> None:
        # A reader thread stamps each line as it arrives: select() on a
        # buffered text pipe misses lines already read into Python's buffer.
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put((time.perf_counter(), line))

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


# -- kube-proxy's nftables mode, the baseline ---------------------------------------------


def _nft_service_chain(i: int, ips: list[str]) -> str:
    targets = ", ".join(f"{k} : {ip}" for k, ip in enumerate(ips))
    return (
        f"  chain svc-s{i} {{\n"
        f"    meta l4proto tcp dnat to numgen random mod {len(ips)}"
        f" map {{ {targets} }}:8080\n  }}\n"
    )


def _nft_ruleset(n: int) -> str:
    lines = ["table ip kube-proxy {"]
    for i in range(n):
        lines.append(_nft_service_chain(i, [_ep_ip(i, j) for j in range(ENDPOINTS)]))
    elements = ",\n      ".join(f"{_vip(i)} . tcp . 80 : goto svc-s{i}" for i in range(n))
    lines.append(
        "  map service-ips {\n    type ipv4_addr . inet_proto . inet_service : verdict\n"
        f"    elements = {{ {elements} }}\n  }}\n"
        "  chain services {\n"
        "    type nat hook prerouting priority dstnat; policy accept;\n"
        "    ip daddr . meta l4proto . th dport vmap @service-ips\n  }\n}\n"
    )
    return "\n".join(lines)


def _nft_bench(n: int, tmp: Path, repeats: int) -> tuple[float, list[float]]:
    """(seconds to load n Services, seconds per one-Service endpoint change)."""
    ns = f"kovnbench{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        rules = tmp / "ruleset.nft"
        rules.write_text(_nft_ruleset(n))
        t0 = time.perf_counter()
        subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", str(rules)], check=True)
        load = time.perf_counter() - t0
        changes = []
        for r in range(repeats):
            ips = [_ep_ip(n + r, j) for j in range(ENDPOINTS)]
            change = tmp / "change.nft"
            change.write_text(
                "flush chain ip kube-proxy svc-s0\n"
                "table ip kube-proxy {\n" + _nft_service_chain(0, ips) + "}\n"
            )
            t0 = time.perf_counter()
            subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", str(change)], check=True)
            changes.append(time.perf_counter() - t0)
        return load, changes
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


# -- kovn -------------------------------------------------------------------------------


async def _run(quick: bool) -> list[Row]:
    n = 1000 if quick else 10_000
    changes = 20 if quick else 100
    tmp = Path(tempfile.mkdtemp(prefix="ksvc-bench-"))
    rows: list[Row] = []
    controller: subprocess.Popen[bytes] | None = None
    monitor: _Monitor | None = None
    try:
        nft_load, nft_changes = await asyncio.to_thread(_nft_bench, n, tmp, changes)
        async with _stack(tmp) as env:
            kube = KubeClient(await connect(env.kubeconfig, pool_size=64))
            session = kube.api.rest_client.pool_manager
            try:
                await kube.create("/api/v1/namespaces", {"metadata": {"name": NS}})
                controller, ready = _controller(tmp, env, "1")
                murl = f"http://{ready['metrics']}/metrics"
                await _wait_metric(
                    session, murl, "kovn_controller_takeover_seconds", lambda v: v > 0, 120
                )

                async def create(i: int) -> None:
                    await kube.create(f"/api/v1/namespaces/{NS}/services", _service(i))
                    await kube.create(SLICES, _slice(i, [_ep_ip(i, j) for j in range(ENDPOINTS)]))

                t0 = time.perf_counter()
                await _pool(n, create)
                t_created = time.perf_counter() - t0
                await _wait_metric(session, murl, "kovn_services", lambda v: v >= n, 600)
                await _wait_metric(
                    session, murl, "kovn_controller_queue_depth", lambda v: v == 0, 600
                )
                took = time.perf_counter() - t0
                lbs = env.ovn.nbctl("--bare", "--columns=name", "list", "Load_Balancer").split()
                n_lbs = sum(1 for x in lbs if x.startswith(f"kovn-lb-{NS}-"))
                rows.append(
                    Row(
                        "services",
                        f"{n} Services x {ENDPOINTS} endpoints into the NB (one controller)",
                        rate=n / took,
                        rate_unit="Services/s",
                        goal="< 60 s" if not quick else "",
                        met=(took < 60 and n_lbs == n) if not quick else n_lbs == n,
                        note=f"{took:.1f} s total (API creates {t_created:.1f} s); {n_lbs} LBs",
                    )
                )

                # One slice change at a time -> the NB commit, seen by a monitor.
                monitor = _Monitor(env.ovn.nb_remote)
                lat = []
                for r in range(changes):
                    i = (r * 7919) % n
                    new = str(ipaddress.ip_address("10.20.0.0") + r + 1)
                    body = _slice(i, [new, *[_ep_ip(i, j) for j in range(1, ENDPOINTS)]])
                    t = time.perf_counter()
                    await kube.request("PUT", f"{SLICES}/s{i}-x", body=body)
                    seen = await asyncio.to_thread(monitor.wait_for, f"{new}:8080")
                    lat.append(seen - t)
                p50, p99 = summarize_ms(lat)
                nft_p50, nft_p99 = summarize_ms(nft_changes)
                rows.append(
                    Row(
                        "services",
                        "baseline: nftables (kube-proxy mode), one Service's endpoints changed",
                        nft_p50,
                        nft_p99,
                        note=f"nft -f into a netns holding {n} Services",
                    )
                )
                rows.append(
                    Row(
                        "services",
                        f"EndpointSlice change -> NB commit ({n} Services)",
                        p50,
                        p99,
                        baseline="baseline: nftables one Service",
                        ratio=p50 / nft_p50,
                        note=f"{changes} changes; API PUT to the monitor's update",
                    )
                )
                rows.append(
                    Row(
                        "services",
                        f"baseline: nftables, {n} Services loaded with one nft -f",
                        nft_load * 1000,
                        note="VIP . proto . port vmap -> chain per Service, numgen dnat",
                    )
                )
                monitor.close()
                monitor = None

                await _wait_metric(
                    session, murl, "kovn_controller_queue_depth", lambda v: v == 0, 120
                )
                _stop(controller)
                t0 = time.perf_counter()
                controller, ready = _controller(tmp, env, "2")
                murl = f"http://{ready['metrics']}/metrics"
                await _wait_metric(
                    session, murl, "kovn_controller_takeover_seconds", lambda v: v > 0, 120
                )
                resync = time.perf_counter() - t0
                writes = await _metric(session, murl, "kovn_controller_nb_rows_written_total")
                rows.append(
                    Row(
                        "services",
                        f"controller restart resync ({n} Services)",
                        goal="< 10 s, 0 writes",
                        met=resync < 10 and writes == 0,
                        note=f"{resync:.1f} s from process start; NB rows written: {writes:.0f}",
                    )
                )
                size = (env.ovn.run_dir / "ovnnb_db.db").stat().st_size
                rows.append(
                    Row(
                        "services",
                        f"NB database file ({n} Services)",
                        note=f"{size / 2**20:.1f} MiB ({size / n:.0f} B per Service)",
                    )
                )
            finally:
                _stop(controller)
                with contextlib.suppress(KubeError):
                    await kube.close()
    finally:
        if monitor is not None:
            monitor.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def run(quick: bool = False) -> list[Row]:
    return asyncio.run(_run(quick))


if __name__ == "__main__":
    from bench.report import to_markdown

    print(to_markdown(run("--quick" in sys.argv), "services"))
    os._exit(0)
