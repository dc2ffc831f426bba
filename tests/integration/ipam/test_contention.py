"""Three ipam replicas on one etcd, 3,000 concurrent allocations into one subnet.

Replicas only share etcd; each guesses free addresses from its own view and
the transactions decide. Some owners are asked for on two replicas at the
same time, which must give one allocation, not two. At the end etcd holds
every acknowledged allocation, unchanged, and no address or MAC twice.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import grpc
import pytest

from sandbox.testbed.ipam import EtcdServer, IpamProcess
from services.api.ipam.v1 import ipam_pb2, ipam_pb2_grpc
from services.ipam.store.etcd import EtcdStore

TOTAL = 3000
CONCURRENCY = 48
DOUBLE_ASKED = 300  # owners also requested on a second replica at the same time


@pytest.mark.slow
async def test_three_replicas_never_hand_out_an_address_twice(
    etcd: EtcdServer, tmp_path: Path
) -> None:
    prefix = f"/ipm-contention/{tmp_path.name}"
    args = ["--store", "etcd", "--etcd-endpoints", etcd.endpoint, "--etcd-prefix", prefix]
    replicas = [IpamProcess(tmp_path, args, name=f"ipam{i}") for i in range(3)]
    channels: list[grpc.aio.Channel] = []
    try:
        for r in replicas:
            r.start()
        channels = [grpc.aio.insecure_channel(r.target) for r in replicas]
        stubs = [ipam_pb2_grpc.IpamStub(ch) for ch in channels]  # type: ignore[no-untyped-call]
        await stubs[0].CreateSubnet(
            ipam_pb2.CreateSubnetRequest(
                subnet=ipam_pb2.Subnet(name="busy", cidrs=["10.50.0.0/20", "fd00:50::/64"])
            )
        )
        jobs: list[tuple[int, int]] = [(i, i % 3) for i in range(TOTAL)]
        jobs += [(i, (i + 1) % 3) for i in range(0, TOTAL, TOTAL // DOUBLE_ASKED)]
        jobs.sort(key=lambda job: (job[0], job[1]))  # the two asks of an owner run together
        acked: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        retries = 0
        work = iter(jobs)

        async def client() -> None:
            nonlocal retries
            for i, replica in work:
                req = ipam_pb2.AllocateRequest(
                    owner=ipam_pb2.Owner(network="busy", namespace="ns", pod=f"p{i}"),
                    pod_uid=f"uid{i}",
                    container_id=f"c{i}",
                )
                for attempt in itertools.count():
                    try:
                        resp = await stubs[replica].Allocate(req, timeout=30)
                        break
                    except grpc.aio.AioRpcError as err:
                        # UNAVAILABLE after too many lost races is the
                        # documented "retry" answer; anything else fails.
                        if err.code() != grpc.StatusCode.UNAVAILABLE or attempt > 5:
                            raise
                        retries += 1
                ips = tuple(a.ip for a in resp.addresses)
                acked.setdefault(f"p{i}", []).append((ips, resp.mac))

        await asyncio.wait_for(asyncio.gather(*(client() for _ in range(CONCURRENCY))), 240)

        assert len(acked) == TOTAL
        doubled = [pod for pod, answers in acked.items() if len(set(answers)) != 1]
        assert not doubled, f"owners given two different allocations: {doubled[:5]}"

        store = EtcdStore([etcd.endpoint], prefix=prefix)
        await store.open()
        try:
            records = await store.list_allocations("busy")
        finally:
            await store.close()
        stored = {r.owner.pod: (tuple(r.ips), r.mac) for r in records}
        lost = [pod for pod, answers in acked.items() if stored.get(pod) != answers[0]]
        assert not lost, f"{len(lost)} acknowledged allocations missing/changed: {lost[:5]}"
        ips = [ip for r in records for ip in r.ips]
        assert len(ips) == len(set(ips)) == 2 * TOTAL
        assert len({r.mac for r in records}) == TOTAL
        assert all(r.pod_uid == f"uid{r.owner.pod[1:]}" for r in records)
    finally:
        for ch in channels:
            await ch.close(None)
        for r in replicas:
            r.stop()
