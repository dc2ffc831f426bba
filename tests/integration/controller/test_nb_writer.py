"""The NB client and writer against a real ovsdb-server with the NB schema."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.controller.nb.client import NbClient
from services.controller.nb.rows import DesiredRow, diff
from services.controller.nb.writer import NbWriter
from services.controller.subnet_spec import internal_subnet
from services.controller.topology.ports import NicAddress, pod_port_row
from services.controller.topology.subnet import cluster_rows, subnet_rows
from tests.integration.controller.nbdb import nb_server, nbctl


@pytest.fixture
async def nb(tmp_path: Path) -> AsyncIterator[tuple[NbClient, str]]:
    with nb_server(tmp_path / "nb") as remote:
        client = NbClient(remote)
        await client.connect()
        try:
            yield client, remote
        finally:
            await client.close()


def _topology(pods: int) -> list[DesiredRow]:
    spec = internal_subnet("ovn-default", "10.16.0.0/16")
    rows = [*cluster_rows(), *subnet_rows(spec)]
    for i in range(pods):
        addr = NicAddress(
            f"0a:00:00:00:{i // 256:02x}:{i % 256:02x}", (f"10.16.{i // 250}.{i % 250 + 2}/16",)
        )
        rows.append(pod_port_row("ns", f"p{i}", "", "ovn-default", addr, "node1"))
    return rows


async def test_apply_creates_topology_and_rewrites_nothing(nb: tuple[NbClient, str]) -> None:
    client, remote = nb
    desired = _topology(50)
    plan = diff(desired, await client.snapshot())
    assert len(plan.ensure) == len(desired)
    assert await client.apply(plan.ensure, plan.remove) == len(desired)

    assert (
        nbctl(remote, "get", "Logical_Router_Port", "kovn-cluster-ovn-default", "networks").strip()
        == '["10.16.0.1/16"]'
    )
    ports = nbctl(remote, "--bare", "--columns=name", "list", "Logical_Switch_Port").split()
    assert "p7.ns" in ports and "ovn-default-kovn-cluster" in ports
    assert (
        nbctl(remote, "get", "Logical_Switch_Port", "p7.ns", "options:requested-chassis").strip()
        == "node1"
    )
    assert "10.16.0.9" in nbctl(remote, "get", "Logical_Switch_Port", "p7.ns", "port_security")

    # Same desired state: the snapshot matches, nothing to write.
    again = diff(_topology(50), await client.snapshot())
    assert len(again) == 0


async def test_drift_and_orphans_are_repaired_foreign_rows_kept(nb: tuple[NbClient, str]) -> None:
    client, remote = nb
    desired = _topology(5)
    await client.apply(desired, [])
    nbctl(remote, "ls-add", "someone-else")
    nbctl(remote, "lsp-set-addresses", "p1.ns", "00:00:00:00:00:01 10.9.9.9")
    nbctl(remote, "lsp-set-port-security", "p2.ns")

    # The IDL replica learns of the hand edits on its own thread: poll it.
    deadline = time.monotonic() + 10
    while len((plan := diff(_topology(3), await client.snapshot())).ensure) < 2:
        assert time.monotonic() < deadline, "the replica never saw the hand edits"
        await asyncio.sleep(0.02)
    assert sorted(r.name for r in plan.ensure) == ["p1.ns", "p2.ns"]
    assert sorted(r.name for r in plan.remove) == ["p3.ns", "p4.ns"]
    changed = await client.apply(
        plan.ensure, plan.remove, force={(r.table, r.name) for r in plan.ensure}
    )
    assert changed == 4
    assert "10.16.0.3" in nbctl(remote, "get", "Logical_Switch_Port", "p1.ns", "addresses")
    assert "10.16.0.4" in nbctl(remote, "get", "Logical_Switch_Port", "p2.ns", "port_security")
    switches = nbctl(remote, "--bare", "--columns=name", "list", "Logical_Switch").split()
    assert sorted(switches) == ["ovn-default", "someone-else"]
    assert len(diff(_topology(3), await client.snapshot())) == 0


async def test_port_moves_between_switches(nb: tuple[NbClient, str]) -> None:
    client, remote = nb
    other = internal_subnet("other", "10.17.0.0/16")
    await client.apply([*_topology(1), *subnet_rows(other)], [])
    addr = NicAddress("0a:00:00:00:09:09", ("10.17.0.5/16",))
    moved = pod_port_row("ns", "p0", "", "other", addr, "node2")
    assert await client.apply([moved], []) == 1
    assert "p0.ns" not in nbctl(
        remote, "--bare", "--columns=ports", "list", "Logical_Switch", "ovn-default"
    )
    uuid = nbctl(
        remote, "--bare", "--columns=_uuid", "find", "Logical_Switch_Port", "name=p0.ns"
    ).strip()
    assert uuid in nbctl(remote, "--bare", "--columns=ports", "list", "Logical_Switch", "other")


async def test_writer_batches_concurrent_requests(nb: tuple[NbClient, str]) -> None:
    client, remote = nb
    writer = NbWriter(client)
    base = _topology(0)
    await writer.write(base)
    rows = _topology(300)[len(base) :]
    before = writer.transactions
    await asyncio.gather(*(writer.write([row]) for row in rows))
    assert writer.transactions - before < 20  # 300 requests, few transactions
    assert (
        len(nbctl(remote, "--bare", "--columns=name", "list", "Logical_Switch_Port").split()) == 301
    )
    await writer.stop()


async def test_writer_isolates_a_failing_request(nb: tuple[NbClient, str]) -> None:
    client, _ = nb
    writer = NbWriter(client)
    await writer.write(_topology(0))
    good = _topology(2)[-1]
    addr = NicAddress("0a:00:00:00:09:09", ("10.99.0.5/16",))
    bad = pod_port_row("ns", "orphan", "", "no-such-switch", addr, "node1")
    results = await asyncio.gather(
        writer.write([bad]), writer.write([good]), return_exceptions=True
    )
    assert isinstance(results[0], RuntimeError) and "no-such-switch" in str(results[0])
    assert results[1] == 1
    await writer.stop()
