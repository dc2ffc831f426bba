"""kill -9 during 2,000 allocations on SQLite: nothing acknowledged is lost.

Clients allocate concurrently while the service process is killed with
SIGKILL and restarted, again and again. A client whose call failed retries
the same owner, which also exercises idempotency across a crash (the
allocation may have been committed before the kill). At the end every
acknowledged allocation must be there with the same addresses and MAC, and
no address may be held twice, both through the API and in the database.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import grpc
import pytest

from sandbox.testbed.ipam import IpamProcess
from sandbox.testbed.procs import free_port
from services.api.ipam.v1 import ipam_pb2, ipam_pb2_grpc

TOTAL = 2000
CLIENTS = 16
KILLS = 6


async def _call_until_served(target: str, make_call: object) -> object:
    """Retry through kills: UNAVAILABLE and connection errors until it answers."""
    while True:
        ch = grpc.aio.insecure_channel(target)
        try:
            stub = ipam_pb2_grpc.IpamStub(ch)  # type: ignore[no-untyped-call]
            return await make_call(stub)  # type: ignore[operator]
        except grpc.aio.AioRpcError as err:
            if err.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                raise
            await asyncio.sleep(0.05)  # the service is restarting; nothing to await on
        finally:
            await ch.close(None)


@pytest.mark.slow
async def test_kill_dash_nine_loses_no_acknowledged_allocation(tmp_path: Path) -> None:
    db = tmp_path / "ipam.db"
    port = free_port()
    args = ["--store", "sqlite", "--sqlite-path", str(db), "--cooldown-seconds", "0"]
    proc = IpamProcess(tmp_path, args)
    proc.args = [*args, "--listen", f"127.0.0.1:{port}"]
    target = f"127.0.0.1:{port}"
    acked: dict[str, tuple[list[str], str]] = {}
    interrupted = 0  # calls cut off by a kill (proof the kills landed mid-flight)
    try:
        proc.start()
        async with grpc.aio.insecure_channel(target) as ch:
            stub = ipam_pb2_grpc.IpamStub(ch)  # type: ignore[no-untyped-call]
            await stub.CreateSubnet(ipam_pb2.CreateSubnetRequest(
                subnet=ipam_pb2.Subnet(name="crash", cidrs=["10.40.0.0/20"])))  # fmt: skip

        progress = asyncio.Condition()
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(TOTAL):
            queue.put_nowait(i)

        async def client() -> None:
            ch = grpc.aio.insecure_channel(target)
            stub = ipam_pb2_grpc.IpamStub(ch)  # type: ignore[no-untyped-call]
            try:
                while not queue.empty():
                    i = queue.get_nowait()
                    req = ipam_pb2.AllocateRequest(
                        owner=ipam_pb2.Owner(network="crash", namespace="ns", pod=f"p{i}"),
                        pod_uid=f"uid{i}",
                    )
                    while True:
                        try:
                            resp = await stub.Allocate(req, timeout=10)
                            break
                        except grpc.aio.AioRpcError as err:
                            if err.code() not in (
                                grpc.StatusCode.UNAVAILABLE,
                                grpc.StatusCode.CANCELLED,
                                grpc.StatusCode.DEADLINE_EXCEEDED,
                            ):
                                raise
                            nonlocal interrupted
                            interrupted += 1
                            await asyncio.sleep(0.02)  # killed: wait for the restart
                    acked[f"p{i}"] = ([a.ip for a in resp.addresses], resp.mac)
                    async with progress:
                        progress.notify_all()
            finally:
                await ch.close(None)

        async def killer() -> None:
            for _ in range(KILLS):
                # Kill when a share of the work is done, not on a timer.
                target_count = len(acked) + TOTAL // (KILLS + 2)
                async with progress:
                    goal = min(target_count, TOTAL)
                    await progress.wait_for(lambda goal=goal: len(acked) >= goal)  # type: ignore[misc]
                proc.kill()
                await asyncio.to_thread(proc.start)

        clients = [asyncio.create_task(client()) for _ in range(CLIENTS)]
        kills = asyncio.create_task(killer())
        await asyncio.wait_for(asyncio.gather(*clients), 240)
        await kills
        assert len(acked) == TOTAL
        assert interrupted >= KILLS

        proc.kill()
        await asyncio.to_thread(proc.start)

        async def list_all(stub: ipam_pb2_grpc.IpamStub) -> list[ipam_pb2.Allocation]:
            out, token = [], ""
            while True:
                page = await stub.ListAllocations(
                    ipam_pb2.ListAllocationsRequest(subnet="crash", page_size=700, page_token=token)
                )
                out += list(page.allocations)
                token = page.next_page_token
                if not token:
                    return out

        listed = await _call_until_served(target, list_all)
        assert isinstance(listed, list)
        found = {a.owner.pod: ([x.ip for x in a.addresses], a.mac) for a in listed}
        missing = [pod for pod in acked if found.get(pod) != acked[pod]]
        assert not missing, f"{len(missing)} acknowledged allocations lost/changed: {missing[:5]}"
        ips = [ip for a in listed for ip in (x.ip for x in a.addresses)]
        assert len(ips) == len(set(ips)) == TOTAL
    finally:
        proc.stop()

    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT COUNT(*), COUNT(DISTINCT ip) FROM addresses").fetchone()
        allocations = conn.execute("SELECT COUNT(*) FROM allocations").fetchone()[0]
        macs = conn.execute("SELECT COUNT(DISTINCT mac) FROM allocations").fetchone()[0]
    assert rows == (TOTAL, TOTAL) and allocations == macs == TOTAL
