"""CNI latency: kovn-cni against the reference bridge + host-local plugins.

Measured in one run on this machine: shim start-up (VERSION), ADD and DEL
sequential and 20 at once (after one warm-up call each), for kovn-cni (ADD includes the wait for
ovn-installed on a real OVS/OVN node; called through the launcher
cni_shim.launcher writes) and for /usr/lib/cni/bridge with
host-local IPAM (the baseline). Pods' logical ports exist in OVN before ADD,
as the controller creates them when the pod is scheduled.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.report import Row, summarize_ms
from cni_shim.launcher import install
from sandbox import netns
from sandbox.testbed.dataplane import KOVN_CNI, Env, node_env

REF_DIR = Path("/usr/lib/cni")
_LAUNCHER: list[str] = [KOVN_CNI]
CONCURRENCY = 20


def _timed(argv: list[str], env: dict[str, str], stdin: bytes) -> tuple[float, int, bytes]:
    started = time.perf_counter()
    proc = subprocess.run(argv, input=stdin, env=env, capture_output=True, timeout=120)
    return time.perf_counter() - started, proc.returncode, proc.stdout


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}


def _startup(n: int, launcher: str) -> list[Row]:
    rows = []
    version = json.dumps({"cniVersion": "1.0.0"}).encode()
    env = {**_base_env(), "CNI_COMMAND": "VERSION"}
    cases = [
        ("python -I -S -c pass (floor)", [sys.executable, "-I", "-S", "-c", "pass"]),
        ("kovn-cni VERSION (pip console script, editable)", [KOVN_CNI]),
        ("kovn-cni VERSION (cni_shim.launcher, python -IS)", [launcher]),
        ("reference bridge VERSION", [str(REF_DIR / "bridge")]),
    ]
    for label, argv in cases:
        samples = []
        for _ in range(n):
            seconds, rc, _out = _timed(argv, env, version)
            assert rc == 0, label
            samples.append(seconds)
        p50, p99 = summarize_ms(samples)
        rows.append(Row("cni", f"start-up: {label}", p50, p99, note=f"n={n}"))
    # Twenty at once: the floor for the concurrent ADD rows (2 cores shared).
    for label, argv in cases[2:]:
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            runs = list(pool.map(lambda _, a=argv: _timed(a, env, version), range(CONCURRENCY)))
        p50, p99 = summarize_ms([seconds for seconds, _rc, _out in runs])
        rows.append(Row("cni", f"start-up: {label}, {CONCURRENCY} concurrent", p50, p99,
                        note=f"n={CONCURRENCY}"))  # fmt: skip
    return rows


def _kovn_pods(e: Env, prefix: str, n: int) -> list[tuple[str, str, str]]:
    pods = []
    for i in range(n):
        name = f"{prefix}-{i}"
        e.add_pod(name)
        _ns_name, ns_path = e.pod_netns()
        pods.append((name, uuid.uuid4().hex, ns_path))
    e.ovn.nbctl("--wait=sb", "sync")
    return pods


def _kovn_call(e: Env, command: str, pod: tuple[str, str, str]) -> float:
    env = {**_base_env(), **e.env(command, pod[1], pod[2], pod=pod[0])}
    seconds, rc, out = _timed([_LAUNCHER[0]], env, json.dumps(e.conf()).encode())
    if rc != 0:
        raise RuntimeError(f"kovn-cni {command} failed: {out.decode(errors='replace')}")
    return seconds


def _server_side(e: Env, container_ids: set[str]) -> list[float]:
    """Seconds the dataplane spent on these ADDs (from entry to answer)."""
    out = []
    for line in (e.tmp / "dp.log").read_text().splitlines():
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        if event.get("event") == "cni_add" and event.get("container_id") in container_ids:
            out.append(float(event["server_seconds"]))
    return out


def _ref_conf(data_dir: Path) -> bytes:
    conf: dict[str, Any] = {
        "cniVersion": "1.0.0",
        "name": "kdpbench",
        "type": "bridge",
        "bridge": "kdpbr0",
        "isGateway": True,
        "ipam": {"type": "host-local", "subnet": "10.78.0.0/16", "dataDir": str(data_dir)},
    }
    return json.dumps(conf).encode()


def _ref_call(command: str, cid: str, ns_path: str, conf: bytes) -> float:
    env = {
        **_base_env(),
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": ns_path,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(REF_DIR),
    }
    seconds, rc, out = _timed([str(REF_DIR / "bridge")], env, conf)
    if rc != 0:
        raise RuntimeError(f"bridge {command} failed: {out.decode(errors='replace')}")
    return seconds


def _rows(label: str, adds: list[float], dels: list[float], wall: float | None) -> list[Row]:
    out = []
    for command, samples in (("ADD", adds), ("DEL", dels)):
        p50, p99 = summarize_ms(samples)
        row = Row("cni", f"{label} {command}", p50, p99, note=f"n={len(samples)}")
        if wall is not None and command == "ADD":
            row.rate, row.rate_unit = len(samples) / wall, "ADD/s"
        out.append(row)
    return out


def _run_both(e: Env, seq: int, tmp: Path) -> list[Row]:
    rows: list[Row] = []
    conf = _ref_conf(tmp / "ipam")
    ref_ns: list[str] = []

    def ref_pods(n: int) -> list[tuple[str, str]]:
        out = []
        for _ in range(n):
            name, path = e.pod_netns()
            ref_ns.append(name)
            out.append((uuid.uuid4().hex, path))
        return out

    try:
        # One warm-up ADD/DEL each: the node's first port makes ovn-controller
        # set up the switch's datapath once (a one-off per node, not per pod).
        warm = _kovn_pods(e, f"bwarm{time.monotonic_ns() % 10**6}", 1)[0]
        _kovn_call(e, "ADD", warm)
        _kovn_call(e, "DEL", warm)
        ((ref_cid, ref_path),) = ref_pods(1)
        _ref_call("ADD", ref_cid, ref_path, conf)
        _ref_call("DEL", ref_cid, ref_path, conf)
        # sequential
        pods = _kovn_pods(e, f"bseq{time.monotonic_ns() % 10**6}", seq)
        adds = [_kovn_call(e, "ADD", p) for p in pods]
        dels = [_kovn_call(e, "DEL", p) for p in pods]
        kovn_seq = _rows("kovn-cni sequential", adds, dels, None)
        rp = ref_pods(seq)
        radds = [_ref_call("ADD", cid, path, conf) for cid, path in rp]
        rdels = [_ref_call("DEL", cid, path, conf) for cid, path in rp]
        ref_seq = _rows("bridge+host-local sequential", radds, rdels, None)
        # concurrent
        pods = _kovn_pods(e, f"bcon{time.monotonic_ns() % 10**6}", CONCURRENCY)
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            t0 = time.perf_counter()
            adds = list(pool.map(lambda p: _kovn_call(e, "ADD", p), pods))
            wall = time.perf_counter() - t0
            dels = list(pool.map(lambda p: _kovn_call(e, "DEL", p), pods))
        kovn_con = _rows(f"kovn-cni {CONCURRENCY} concurrent", adds, dels, wall)
        server = _server_side(e, {p[1] for p in pods})
        if server:
            p50, p99 = summarize_ms(server)
            case = f"  of which dataplane ADD, {CONCURRENCY} concurrent"
            note = "server side, from the dataplane's log"
            kovn_con.append(Row("cni", case, p50, p99, note=note))
        rp = ref_pods(CONCURRENCY)
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            t0 = time.perf_counter()
            radds = list(pool.map(lambda p: _ref_call("ADD", p[0], p[1], conf), rp))
            rwall = time.perf_counter() - t0
            rdels = list(pool.map(lambda p: _ref_call("DEL", p[0], p[1], conf), rp))
        ref_con = _rows(f"bridge+host-local {CONCURRENCY} concurrent", radds, rdels, rwall)
    finally:
        for name in ref_ns:
            e.delete_pod_netns(name)
        subprocess.run(["ip", "link", "del", "kdpbr0"], capture_output=True, check=False)
    for ours, ref in ((kovn_seq, ref_seq), (kovn_con, ref_con)):
        for mine, base in zip(ours, ref, strict=False):
            mine.baseline = base.case
            if mine.p50_ms and base.p50_ms:
                mine.ratio = mine.p50_ms / base.p50_ms
        add = ours[0]
        add.goal = "p50 < 120 ms, p99 < 300 ms"
        add.met = bool(add.p50_ms and add.p99_ms and add.p50_ms < 120 and add.p99_ms < 300)
        rows += [*ours, *ref]
    return rows


def run(quick: bool = False) -> list[Row]:
    n = 10 if quick else 30
    tmp = Path(tempfile.mkdtemp(prefix="kdp-bench-"))
    _LAUNCHER[0] = str(install(str(tmp / "bin" / "kovn-cni")))
    rows = _startup(n, _LAUNCHER[0])
    try:
        with node_env() as e:
            rows += _run_both(e, n, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


if __name__ == "__main__":
    from bench.report import to_markdown

    print(to_markdown(run(quick="--quick" in sys.argv), title="kovn CNI benchmark"))
    assert not netns.list_names("kdp-p"), "leftover netns"
