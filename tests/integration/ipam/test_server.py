"""The ipam service as a real process: grpcurl through reflection, status codes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from services.api.ipam.v1 import ipam_pb2, ipam_pb2_grpc
from services.common.client import channel
from services.common.errors import from_rpc_error
from tests.integration.ipam.procs import ROOT, EtcdServer, IpamProcess

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
