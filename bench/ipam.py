"""IPAM throughput and latency: Allocate with 32 concurrent clients.

Cases, all in one run on this machine:
- gRPC floor: the same clients calling grpc.health.v1 Check on the same
  server (what any unary call costs here; the baseline of the SQLite row);
- one replica on SQLite;
- the same allocations in-process (servicer + core + SQLite, no gRPC): what
  the service itself costs, apart from the transport;
- three replicas on one etcd (clients spread over the replicas);
- the etcd client choice: a conditional put (create-if-absent Txn) through
  etcd's gRPC API and through its JSON gateway (/v3/kv/txn over aiohttp),
  32 concurrent, straight to etcd.
Each case runs `rounds` times on fresh subnets; latency percentiles are over
every call, the rate is the median of the rounds' rates.
"""

from __future__ import annotations

import asyncio
import base64
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import cast

import aiohttp
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.report import Row, summarize_ms
from sandbox.testbed.ipam import EtcdServer, IpamProcess
from services.api.ipam.v1 import ipam_pb2, ipam_pb2_grpc
from services.common.grpc_types import Context
from services.ipam.store.etcdpb import etcd_subset_pb2 as pb

CLIENTS = 32
#: The in-process case calls servicer methods directly; they never read the context.
NO_CONTEXT = cast(Context, None)
# As in production: every allocation logged (JSON lines, here into a file).
LOGS = ["--log-level", "info", "--log-format", "json"]


async def _drive(
    n: int, call: Callable[[int], Awaitable[object]], clients: int = CLIENTS
) -> tuple[list[float], float]:
    """Run call(0..n-1) from `clients` concurrent workers; (latencies, rate/s)."""
    latencies: list[float] = []
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            started = time.perf_counter()
            await call(i)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return latencies, n / (time.perf_counter() - started)


async def _rounds(
    rounds: int, make: Callable[[int], Awaitable[Callable[[int], Awaitable[object]]]], n: int
) -> tuple[list[float], list[float]]:
    samples: list[float] = []
    rates: list[float] = []
    for r in range(rounds):
        call = await make(r)
        lat, rate = await _drive(n, call)
        samples += lat
        rates.append(rate)
    return samples, rates


def _row(case: str, samples: list[float], rates: list[float]) -> Row:
    p50, p99 = summarize_ms(samples)
    rate = statistics.median(rates)
    # Other work on this 2-core machine moves these figures: say how busy it was.
    note = (
        f"{len(rates)} rounds x {len(samples) // len(rates)} calls, rates "
        + ", ".join(f"{r:,.0f}" for r in rates)
        + f"; load avg {os.getloadavg()[0]:.1f}"
    )
    return Row("ipam", case, p50, p99, rate, "alloc/s", note=note)


async def _allocations(
    stubs: list[ipam_pb2_grpc.IpamStub], n: int, rounds: int, tag: str
) -> tuple[list[float], list[float]]:
    async def make(r: int) -> Callable[[int], Awaitable[object]]:
        name = f"bench-{tag}-{r}"
        await stubs[0].CreateSubnet(
            ipam_pb2.CreateSubnetRequest(
                subnet=ipam_pb2.Subnet(name=name, cidrs=[f"10.{100 + r}.0.0/16"])
            )
        )

        async def call(i: int) -> object:
            owner = ipam_pb2.Owner(network=name, namespace="bench", pod=f"p{i}")
            return await stubs[i % len(stubs)].Allocate(
                ipam_pb2.AllocateRequest(owner=owner, pod_uid=f"u{i}", container_id=f"c{i}")
            )

        # Replicas learn of the subnet through etcd; one call each warms that up.
        for k, stub in enumerate(stubs):
            owner = ipam_pb2.Owner(network=name, namespace="warm", pod=f"w{k}")
            await stub.Allocate(ipam_pb2.AllocateRequest(owner=owner))
        return call

    return await _rounds(rounds, make, n)


async def _sqlite_and_floor(work: Path, n: int, rounds: int) -> list[Row]:
    args = ["--store", "sqlite", "--sqlite-path", str(work / "bench.db"), *LOGS]
    proc = IpamProcess(work, args, name="sqlite").start()
    rows = []
    try:
        async with grpc.aio.insecure_channel(proc.target) as ch:
            health = health_pb2_grpc.HealthStub(ch)
            req = health_pb2.HealthCheckRequest(service="kovn.ipam.v1.Ipam")

            async def make_floor(r: int) -> Callable[[int], Awaitable[object]]:
                async def call(i: int) -> object:
                    return await health.Check(req)

                return call

            floor_s, floor_r = await _rounds(rounds, make_floor, n)
            floor = _row("gRPC floor: Health/Check, 32 clients", floor_s, floor_r)
            floor.rate_unit = "calls/s"
            stub = ipam_pb2_grpc.IpamStub(ch)  # type: ignore[no-untyped-call]
            s, r = await _allocations([stub], n, rounds, "sqlite")
            row = _row("Allocate, 1 replica, SQLite, 32 clients", s, r)
            row.baseline = floor.case
            row.ratio = (row.rate or 0) / (floor.rate or 1)
            row.goal = ">= 2,000 alloc/s"
            row.met = (row.rate or 0) >= 2000
            rows += [floor, row]
    finally:
        proc.stop()
    return rows


async def _in_process(work: Path, n: int, rounds: int) -> list[Row]:
    """The service's own cost: servicer + core + SQLite store, no gRPC transport."""
    from services.ipam.core import IpamCore
    from services.ipam.servicer import IpamServicer
    from services.ipam.store.sqlite import SqliteStore

    store = SqliteStore(str(work / "inproc.db"))
    await store.open()
    try:
        core = IpamCore(store, cooldown_seconds=30)
        await core.start()
        servicer = IpamServicer(core)

        async def make(r: int) -> Callable[[int], Awaitable[object]]:
            name = f"inproc-{r}"
            subnet = ipam_pb2.Subnet(name=name, cidrs=[f"10.{150 + r}.0.0/16"])
            await servicer.CreateSubnet(ipam_pb2.CreateSubnetRequest(subnet=subnet), NO_CONTEXT)

            async def call(i: int) -> object:
                owner = ipam_pb2.Owner(network=name, namespace="bench", pod=f"p{i}")
                req = ipam_pb2.AllocateRequest(owner=owner, pod_uid=f"u{i}")
                return await servicer.Allocate(req, NO_CONTEXT)

            return call

        s, r = await _rounds(rounds, make, n)
        row = _row("Allocate in-process (servicer+core+SQLite, no gRPC), 32 tasks", s, r)
        row.note += "; logging at warning"
        return [row]
    finally:
        await store.close()


async def _etcd_replicas(work: Path, etcd: EtcdServer, n: int, rounds: int) -> list[Row]:
    args = ["--store", "etcd", "--etcd-endpoints", etcd.endpoint, "--etcd-prefix", "/bench", *LOGS]
    replicas = [IpamProcess(work, args, name=f"etcd{i}") for i in range(3)]
    channels = []
    try:
        for rep in replicas:
            rep.start()
        channels = [grpc.aio.insecure_channel(rep.target) for rep in replicas]
        stubs = [ipam_pb2_grpc.IpamStub(ch) for ch in channels]  # type: ignore[no-untyped-call]
        s, r = await _allocations(stubs, n, rounds, "etcd")
        row = _row("Allocate, 3 replicas, etcd, 32 clients", s, r)
        row.goal = ">= 1,000 alloc/s"
        row.met = (row.rate or 0) >= 1000
        return [row]
    finally:
        for ch in channels:
            await ch.close(None)
        for rep in replicas:
            rep.stop()


async def _etcd_clients(etcd: EtcdServer, n: int, rounds: int) -> list[Row]:
    """A create-if-absent Txn per call: gRPC API against the JSON gateway."""
    rows = []
    async with grpc.aio.insecure_channel(etcd.endpoint) as ch:
        txn = ch.unary_unary(
            "/etcdserverpb.KV/Txn",
            request_serializer=pb.TxnRequest.SerializeToString,
            response_deserializer=pb.TxnResponse.FromString,
        )

        async def make_grpc(r: int) -> Callable[[int], Awaitable[object]]:
            async def call(i: int) -> object:
                key = f"/bench-client/grpc/{r}/{i}".encode()
                return await txn(
                    pb.TxnRequest(
                        compare=[pb.Compare(key=key, target=pb.Compare.CREATE, create_revision=0)],
                        success=[pb.RequestOp(request_put=pb.PutRequest(key=key, value=b"x"))],
                    )
                )

            return call

        s, r = await _rounds(rounds, make_grpc, n)
        grpc_row = _row("etcd Txn (create-if-absent) via gRPC, 32 clients", s, r)
        grpc_row.rate_unit = "txn/s"
    url = f"http://{etcd.endpoint}/v3/kv/txn"

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CLIENTS)) as http:

        async def make_json(r: int) -> Callable[[int], Awaitable[object]]:
            async def call(i: int) -> object:
                key = b64(f"/bench-client/json/{r}/{i}".encode())
                body = {
                    "compare": [{"key": key, "target": "CREATE", "create_revision": "0"}],
                    "success": [{"request_put": {"key": key, "value": b64(b"x")}}],
                }
                async with http.post(url, json=body) as resp:
                    resp.raise_for_status()
                    return await resp.json()

            return call

        s, r = await _rounds(rounds, make_json, n)
        json_row = _row("etcd Txn (create-if-absent) via JSON gateway, 32 clients", s, r)
        json_row.rate_unit = "txn/s"
        json_row.baseline = grpc_row.case
        json_row.ratio = (json_row.rate or 0) / (grpc_row.rate or 1)
    rows += [grpc_row, json_row]
    return rows


async def _main(quick: bool) -> list[Row]:
    n = 1500 if quick else 5000
    rounds = 1 if quick else 3
    with tempfile.TemporaryDirectory(prefix="ipm-bench-") as tmp:
        work = Path(tmp)
        rows = await _sqlite_and_floor(work, n, rounds)
        rows += await _in_process(work, n, rounds)
        etcd = EtcdServer(work / "etcd").start()
        try:
            rows += await _etcd_replicas(work, etcd, n, rounds)
            rows += await _etcd_clients(etcd, n, rounds)
        finally:
            etcd.stop()
    return rows


def run(quick: bool = False) -> list[Row]:
    return asyncio.run(_main(quick))


if __name__ == "__main__":
    from bench.report import to_markdown

    print(to_markdown(run(quick=True)))
