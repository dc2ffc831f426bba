"""The ipam service as a real process: grpcurl through reflection, status codes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from sandbox.testbed.ipam import EtcdServer, IpamProcess
from sandbox.testbed.procs import ROOT
from services.api.ipam.v1 import ipam_pb2, ipam_pb2_grpc
from services.common.client import channel
from services.common.errors import from_rpc_error

GRPCURL = str(ROOT / ".venv" / "bin" / "grpcurl")


@pytest.fixture(params=["sqlite", "etcd"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IpamProcess]:
    if request.param == "sqlite":
        args = ["--store", "sqlite", "--sqlite-path", str(tmp_path / "ipam.db")]
    else:
        etcd: EtcdServer = request.getfixturevalue("etcd")
        prefix = f"/ipm-srv/{tmp_path.name}"
        args = ["--store", "etcd", "--etcd-endpoints", etcd.endpoint, "--etcd-prefix", prefix]
    proc = IpamProcess(tmp_path, args).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
async def stub(server: IpamProcess) -> AsyncIterator[ipam_pb2_grpc.IpamStub]:
    ch = channel(server.target)
    try:
        yield ipam_pb2_grpc.IpamStub(ch)  # type: ignore[no-untyped-call]
    finally:
        await ch.close(None)


def grpcurl(target: str, method: str, body: Any = None) -> dict[str, Any]:
    args = [GRPCURL, "-plaintext"]
    if body is not None:
        args += ["-d", json.dumps(body)]
    out = subprocess.run(
        [*args, target, method], capture_output=True, text=True, timeout=30, check=False
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout) if out.stdout.strip().startswith("{") else {"text": out.stdout}


def test_grpcurl_creates_allocates_and_lists(server: IpamProcess) -> None:
    t = server.target
    assert "kovn.ipam.v1.Ipam" in grpcurl(t, "list")["text"]
    health = grpcurl(t, "grpc.health.v1.Health/Check", {"service": "kovn.ipam.v1.Ipam"})
    assert health == {"status": "SERVING"}
    body = {"subnet": {"name": "web", "cidrs": ["10.30.0.0/24", "fd00:30::/64"]}}
    sub = grpcurl(t, "kovn.ipam.v1.Ipam/CreateSubnet", body)
    assert sub["gateways"] == ["10.30.0.1", "fd00:30::1"]
    owner = {"network": "web", "namespace": "shop", "pod": "cart-0"}
    alloc = grpcurl(t, "kovn.ipam.v1.Ipam/Allocate",
                    {"owner": owner, "pod_uid": "u1", "container_id": "c1"})  # fmt: skip
    addrs = alloc["addresses"]
    assert isinstance(addrs, list)
    assert [a["address"].split("/")[1] for a in addrs] == ["24", "64"]
    assert [a["gateway"] for a in addrs] == ["10.30.0.1", "fd00:30::1"]
    listed = grpcurl(t, "kovn.ipam.v1.Ipam/ListAllocations", {"subnet": "web"})
    allocations: Any = listed["allocations"]
    (only,) = allocations
    assert only["owner"]["pod"] == "cart-0"
    assert only["pod_uid"] == "u1" and only["container_id"] == "c1"


async def test_status_codes_name_field_and_holder(stub: ipam_pb2_grpc.IpamStub) -> None:
    await stub.CreateSubnet(
        ipam_pb2.CreateSubnetRequest(subnet=ipam_pb2.Subnet(name="n", cidrs=["10.31.0.0/28"]))
    )
    owner = ipam_pb2.Owner(network="n", namespace="ns", pod="a")
    first = await stub.Allocate(ipam_pb2.AllocateRequest(owner=owner, ips=["10.31.0.5"]))
    again = await stub.Allocate(ipam_pb2.AllocateRequest(owner=owner))
    assert again.reused and again.addresses[0].ip == first.addresses[0].ip == "10.31.0.5"

    cases: list[tuple[object, grpc.StatusCode, str]] = [
        (stub.CreateSubnet(ipam_pb2.CreateSubnetRequest(
            subnet=ipam_pb2.Subnet(name="m", cidrs=["10.31.0.0/33"]))),
         grpc.StatusCode.INVALID_ARGUMENT, "subnet.cidrs"),
        (stub.CreateSubnet(ipam_pb2.CreateSubnetRequest(
            subnet=ipam_pb2.Subnet(name="m", cidrs=["10.31.0.0/24"]))),
         grpc.StatusCode.ALREADY_EXISTS, "subnet.cidrs"),
        (stub.Allocate(ipam_pb2.AllocateRequest(
            owner=ipam_pb2.Owner(network="n", namespace="ns", pod="b"), ips=["10.31.0.5"])),
         grpc.StatusCode.ALREADY_EXISTS, "ips"),
        (stub.Allocate(ipam_pb2.AllocateRequest(owner=owner, ips=["10.31.0.6"])),
         grpc.StatusCode.FAILED_PRECONDITION, "ips"),
        (stub.Allocate(ipam_pb2.AllocateRequest(
            owner=ipam_pb2.Owner(network="n", namespace="ns/x", pod="b"))),
         grpc.StatusCode.INVALID_ARGUMENT, "owner.namespace"),
        (stub.Allocate(ipam_pb2.AllocateRequest()), grpc.StatusCode.INVALID_ARGUMENT, "owner"),
        (stub.DeleteSubnet(ipam_pb2.DeleteSubnetRequest(name="n")),
         grpc.StatusCode.FAILED_PRECONDITION, "name"),
        (stub.GetSubnet(ipam_pb2.GetSubnetRequest(name="zz")), grpc.StatusCode.NOT_FOUND, "name"),
    ]  # fmt: skip
    for call, code, field in cases:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call  # type: ignore[misc]
        assert info.value.code() == code, info.value
        assert (info.value.details() or "").startswith(f"{field}: "), info.value.details()
        assert from_rpc_error(info.value).field in (field, None)
    held = await stub.ListAllocations(ipam_pb2.ListAllocationsRequest(subnet="n"))
    assert [a.owner.pod for a in held.allocations] == ["a"]
    assert "ns/a" not in held.allocations[0].owner.pod
    holder = None
    try:
        other = ipam_pb2.Owner(network="n", namespace="ns", pod="c")
        await stub.Allocate(ipam_pb2.AllocateRequest(owner=other, ips=["10.31.0.5"]))
    except grpc.aio.AioRpcError as err:
        holder = err.details()
    assert holder is not None and "n/ns/a/eth0" in holder


def _metric(text: str, name: str, **labels: str) -> float | None:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + "{"):
            head, _, value = line.rpartition(" ")
            got = ",".join(sorted(head[len(name) + 1 : -1].split(",")))
            if got == want:
                return float(value)
    return None


@pytest.fixture
def kovn_serve(tmp_path: Path) -> Iterator[dict[str, str]]:
    """`kovn ipam serve` (the CLI entry point) with /metrics; yields its addresses."""
    from sandbox.testbed.procs import poll, stop

    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "kovn"), "ipam", "serve", "--listen", "127.0.0.1:0",
         "--metrics", "127.0.0.1:0", "--ready-file", str(ready), "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # The database path from the environment, as a Deployment would set it.
        env={**os.environ, "KOVN_IPAM_SQLITE_PATH": str(tmp_path / "state" / "ipam.db")},
    )  # fmt: skip
    try:
        poll(ready.exists, 30, "kovn ipam serve", proc=proc)
        assert (tmp_path / "state" / "ipam.db").exists()
        yield json.loads(ready.read_text())
    finally:
        stop(proc)


async def test_metrics_through_kovn_ipam_serve(kovn_serve: dict[str, str]) -> None:
    import aiohttp

    async with grpc.aio.insecure_channel(kovn_serve["grpc"]) as ch:
        stub = ipam_pb2_grpc.IpamStub(ch)  # type: ignore[no-untyped-call]
        subnet = ipam_pb2.Subnet(name="m", cidrs=["10.32.0.0/24"], excludes=["10.32.0.9"])
        await stub.CreateSubnet(ipam_pb2.CreateSubnetRequest(subnet=subnet))
        for pod in ("a", "b", "c"):
            owner = ipam_pb2.Owner(network="m", namespace="ns", pod=pod)
            await stub.Allocate(ipam_pb2.AllocateRequest(owner=owner))
        await stub.Release(
            ipam_pb2.ReleaseRequest(owner=ipam_pb2.Owner(network="m", namespace="ns", pod="c"))
        )
    url = f"http://{kovn_serve['metrics']}/metrics"
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        text = await resp.text()
    series = "kovn_ipam_addresses"
    assert _metric(text, series, subnet="m", family="IPv4", state="used") == 2
    assert _metric(text, series, subnet="m", family="IPv4", state="cooling") == 1
    assert _metric(text, series, subnet="m", family="IPv4", state="excluded") == 4
    assert _metric(text, series, subnet="m", family="IPv4", state="free") == 256 - 4 - 3
    count = _metric(text, "kovn_ipam_allocation_duration_seconds_count", store="sqlite")
    assert count == 3
    assert _metric(text, "kovn_ipam_releases_total", store="sqlite", cause="owner") == 1
    assert "# TYPE kovn_ipam_allocation_conflicts_total counter" in text


@pytest.mark.slow
async def test_health_follows_etcd(tmp_path: Path) -> None:
    """NOT_SERVING while etcd is down, SERVING again when it is back."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    own_etcd = EtcdServer(tmp_path / "etcd")
    await asyncio.to_thread(own_etcd.start)
    args = ["--store", "etcd", "--etcd-endpoints", own_etcd.endpoint]
    proc = IpamProcess(tmp_path, args)
    try:
        await asyncio.to_thread(proc.start)
        async with grpc.aio.insecure_channel(proc.target) as ch:
            health = health_pb2_grpc.HealthStub(ch)
            watch = health.Watch(health_pb2.HealthCheckRequest(service="kovn.ipam.v1.Ipam"))
            serving = health_pb2.HealthCheckResponse.SERVING

            async def next_status() -> int:
                return int((await asyncio.wait_for(watch.read(), 30)).status)

            assert await next_status() == serving
            await asyncio.to_thread(own_etcd.stop)
            assert await next_status() == health_pb2.HealthCheckResponse.NOT_SERVING
            await asyncio.to_thread(own_etcd.start)
            assert await next_status() == serving
            stub = ipam_pb2_grpc.IpamStub(ch)  # type: ignore[no-untyped-call]
            subnet = ipam_pb2.Subnet(name="h", cidrs=["10.33.0.0/24"])
            await stub.CreateSubnet(ipam_pb2.CreateSubnetRequest(subnet=subnet))
            watch.cancel()
    finally:
        proc.stop()
        own_etcd.stop()
