"""The ipam behaviour suite, run against every store (SQLite and a real etcd)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from typing import Any

import pytest

from services.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    KovnError,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from services.ipam.core import IpamCore
from services.ipam.model import Cooling, Owner, PoolSpec, SubnetSpec
from services.ipam.request import AllocationRequest
from tests.integration.ipam.conftest import Clock, Stores


def pod(name: str, network: str = "net1", ns: str = "default", nic: str = "eth0") -> Owner:
    return Owner(network, ns, name, nic)


async def subnet(core: IpamCore, name: str = "net1", *cidrs: str, excludes: tuple[str, ...] = (),
                 gateways: tuple[str, ...] = ()) -> SubnetSpec:  # fmt: skip
    return await core.create_subnet(
        SubnetSpec(name, list(cidrs or ("10.16.0.0/24",)), list(gateways), list(excludes))
    )


def expect(err: type[KovnError], field: str, *words: str) -> Any:
    """pytest.raises plus: the error names the field and mentions `words`."""

    class _Check:
        def __enter__(self) -> None:
            self.ctx = pytest.raises(err)
            self.info = self.ctx.__enter__()

        def __exit__(self, *exc: object) -> bool:
            handled = self.ctx.__exit__(*exc)  # type: ignore[arg-type]
            assert self.info.value.field == field, self.info.value
            for word in words:
                assert word in str(self.info.value), (word, str(self.info.value))
            return bool(handled)

    return _Check()


# ---- subnets -------------------------------------------------------------------


async def test_subnet_defaults_gateway_and_round_trips(core: IpamCore) -> None:
    spec = await subnet(core, "dual", "10.20.0.0/16", "fd00:20::/64")
    assert spec.gateways == ["10.20.0.1", "fd00:20::1"]
    assert core.get_subnet("dual").cidrs == ["10.20.0.0/16", "fd00:20::/64"]
    assert [s.name for s in core.list_subnets()] == ["dual"]
    with expect(NotFound, "name", "nope"):
        core.get_subnet("nope")


@pytest.mark.parametrize(
    ("cidrs", "gateways", "excludes", "field", "word"),
    [
        (["10.0.0.0/33"], [], [], "subnet.cidrs", "not a valid CIDR"),
        (["banana"], [], [], "subnet.cidrs", "banana"),
        (["10.0.0.1/24"], [], [], "subnet.cidrs", "host bits"),
        (["10.0.0.0/31"], [], [], "subnet.cidrs", "too small"),
        (["fd00::/127"], [], [], "subnet.cidrs", "too small"),
        (["10.0.0.0/24", "10.1.0.0/24"], [], [], "subnet.cidrs", "one CIDR per family"),
        (["10.0.0.0/24"], ["10.0.1.1"], [], "subnet.gateways", "outside"),
        (["10.0.0.0/24"], ["10.0.0.255"], [], "subnet.gateways", "broadcast"),
        (["10.0.0.0/24"], [], ["10.0.0.9-10.0.0.3"], "subnet.excludes", "after its end"),
        (["10.0.0.0/24"], [], ["fd00::1"], "subnet.excludes", "no IPv6"),
    ],
)
async def test_bad_subnet_is_refused_and_nothing_stored(
    core: IpamCore, stores: Stores, cidrs: list[str], gateways: list[str], excludes: list[str],
    field: str, word: str,
) -> None:  # fmt: skip
    with expect(InvalidArgument, field, word):
        await core.create_subnet(SubnetSpec("bad", cidrs, gateways, excludes))
    assert core.list_subnets() == []
    assert (await core.store.load()).subnets == []


async def test_overlapping_subnet_names_the_other(core: IpamCore) -> None:
    await subnet(core, "a", "10.0.0.0/16")
    with expect(AlreadyExists, "subnet.cidrs", "'a'", "10.0.0.0/16"):
        await subnet(core, "b", "10.0.5.0/24")
    with expect(AlreadyExists, "subnet.name", "exists"):
        await subnet(core, "a", "10.9.0.0/16")
    assert [s.name for s in core.list_subnets()] == ["a"]


# ---- allocation ----------------------------------------------------------------


async def test_dual_stack_allocation_has_prefix_gateway_and_mac(core: IpamCore) -> None:
    await subnet(core, "net1", "10.16.0.0/24", "fd00:16::/120")
    rec, reused = await core.allocate(
        AllocationRequest(pod("a"), pod_uid="uid-a", container_id="c-a")
    )
    assert not reused
    details = list(core.address_details(rec))
    assert [(d[1], d[2], d[3]) for d in details] == [(24, "10.16.0.1", 4), (120, "fd00:16::1", 6)]
    first = int(rec.mac.split(":")[0], 16)
    assert first & 0b10 and not first & 0b01  # locally administered unicast
    assert (rec.pod_uid, rec.container_id) == ("uid-a", "c-a")
    assert await core.get_allocation(pod("a")) == rec


async def test_small_subnet_hands_out_exactly_the_allowed_addresses(core: IpamCore) -> None:
    # /28: .0 network, .1 gateway, .15 broadcast, .5-.6 and .9 excluded.
    await subnet(core, "net1", "10.1.1.0/28", excludes=("10.1.1.5-10.1.1.6", "10.1.1.9"))
    got = set()
    for i in range(10):
        rec, _ = await core.allocate(AllocationRequest(pod(f"p{i}")))
        got.add(rec.ips[0])
    assert got == {f"10.1.1.{n}" for n in (2, 3, 4, 7, 8, 10, 11, 12, 13, 14)}
    with expect(ResourceExhausted, "owner.network", "no free IPv4"):
        await core.allocate(AllocationRequest(pod("one-too-many")))
    assert "net1/default/one-too-many/eth0" not in core.alloc.owners


async def test_allocate_is_idempotent_also_when_concurrent(core: IpamCore) -> None:
    await subnet(core)
    results = await asyncio.gather(
        *(core.allocate(AllocationRequest(pod("same"))) for _ in range(10))
    )
    records = {(tuple(r.ips), r.mac) for r, _ in results}
    assert len(records) == 1
    assert sum(1 for _, reused in results if not reused) == 1
    again, reused = await core.allocate(AllocationRequest(pod("same")))
    assert reused and (tuple(again.ips), again.mac) in records
    assert len(await core.store.list_allocations()) == 1


async def test_fixed_ip_and_its_refusals(core: IpamCore) -> None:
    await subnet(core, "net1", "10.16.0.0/24", "fd00::/64", excludes=("10.16.0.100-10.16.0.110",))
    rec, _ = await core.allocate(AllocationRequest(pod("fixed"), ips=["10.16.0.50"], families=[4]))
    assert rec.ips == ["10.16.0.50"]
    with expect(AlreadyExists, "ips", "10.16.0.50", "net1/default/fixed/eth0"):
        await core.allocate(AllocationRequest(pod("thief"), ips=["10.16.0.50"]))
    with expect(FailedPrecondition, "ips", "already holds 10.16.0.50"):
        await core.allocate(AllocationRequest(pod("fixed"), ips=["10.16.0.51"]))
    with expect(InvalidArgument, "ips", "outside"):
        await core.allocate(AllocationRequest(pod("x"), ips=["10.17.0.5"]))
    with expect(InvalidArgument, "ips", "excluded"):
        await core.allocate(AllocationRequest(pod("x"), ips=["10.16.0.105"]))
    with expect(InvalidArgument, "ips", "gateway"):
        await core.allocate(AllocationRequest(pod("x"), ips=["10.16.0.1"]))
    with expect(InvalidArgument, "ips", "excluded"):
        await core.allocate(AllocationRequest(pod("x"), ips=["10.16.0.255"]))
    with expect(InvalidArgument, "ips", "not a valid IP"):
        await core.allocate(AllocationRequest(pod("x"), ips=["10.16.0.300"]))
    with expect(InvalidArgument, "ips", "one address per family"):
        await core.allocate(AllocationRequest(pod("x"), ips=["10.16.0.7", "10.16.0.8"]))
    with expect(NotFound, "owner.network", "nonet"):
        await core.allocate(AllocationRequest(pod("x", network="nonet")))
    # A fixed v4 plus an automatic v6 on a dual-stack subnet.
    both, _ = await core.allocate(AllocationRequest(pod("both"), ips=["10.16.0.60"]))
    assert both.ips[0] == "10.16.0.60" and ipaddress.ip_address(both.ips[1]).version == 6
    held = [r.ips for r in await core.store.list_allocations()]
    assert sorted(held) == sorted([["10.16.0.50"], both.ips])


async def test_requested_mac(core: IpamCore) -> None:
    await subnet(core)
    rec, _ = await core.allocate(AllocationRequest(pod("m"), mac="0A:58:0A:10:00:05"))
    assert rec.mac == "0a:58:0a:10:00:05"
    with expect(AlreadyExists, "mac", "net1/default/m/eth0"):
        await core.allocate(AllocationRequest(pod("n"), mac="0a:58:0a:10:00:05"))
    with expect(InvalidArgument, "mac", "multicast"):
        await core.allocate(AllocationRequest(pod("n"), mac="01:00:5e:00:00:01"))
    with expect(InvalidArgument, "mac", "not a MAC"):
        await core.allocate(AllocationRequest(pod("n"), mac="0a:58:0a:10:00"))
    with expect(FailedPrecondition, "mac", "already holds MAC"):
        await core.allocate(AllocationRequest(pod("m"), mac="0a:58:0a:10:00:06"))
    macs = {(await core.allocate(AllocationRequest(pod(f"r{i}"))))[0].mac for i in range(50)}
    assert len(macs) == 50 and rec.mac not in macs


# ---- release and cool-down -----------------------------------------------------


async def test_release_cooldown_and_reclaim(core: IpamCore, clock: Clock) -> None:
    await subnet(core, "net1", "10.3.0.0/29")  # usable .2-.6
    recs = [(await core.allocate(AllocationRequest(pod(f"p{i}"))))[0] for i in range(5)]
    released = await core.release(pod("p0"))
    assert [r.ips for r in released] == [recs[0].ips]
    assert await core.release(pod("p0")) == []  # already free: fine
    with expect(ResourceExhausted, "owner.network", "1 cooling down"):
        await core.allocate(AllocationRequest(pod("new")))
    with expect(Unavailable, "ips", "cools down"):
        await core.allocate(AllocationRequest(pod("new"), ips=recs[0].ips))
    # The previous owner may take its address back at once.
    back, _ = await core.allocate(AllocationRequest(pod("p0"), ips=recs[0].ips))
    assert back.ips == recs[0].ips
    await core.release(pod("p0"))
    clock.advance(31)
    late, _ = await core.allocate(AllocationRequest(pod("new")))
    assert late.ips == recs[0].ips


async def test_release_by_address(core: IpamCore) -> None:
    await subnet(core)
    rec, _ = await core.allocate(AllocationRequest(pod("a")))
    assert await core.release_address("net1", "10.16.0.77") == []
    freed = await core.release_address("net1", rec.ips[0])
    assert [r.owner for r in freed] == [pod("a")]
    with expect(NotFound, "owner", "no allocation"):
        await core.get_allocation(pod("a"))


# ---- pools ---------------------------------------------------------------------


async def test_pools(core: IpamCore) -> None:
    await subnet(core, "net1", "10.5.0.0/24", excludes=("10.5.0.200",))
    await core.create_pool(PoolSpec("net1", "db", ["10.5.0.2-10.5.0.3"]))
    with expect(AlreadyExists, "pool.addresses", "'db'"):
        await core.create_pool(PoolSpec("net1", "web", ["10.5.0.3"]))
    with expect(InvalidArgument, "pool.addresses", "outside"):
        await core.create_pool(PoolSpec("net1", "web", ["10.6.0.3"]))
    with expect(InvalidArgument, "pool.addresses", "excluded"):
        await core.create_pool(PoolSpec("net1", "web", ["10.5.0.200"]))
    general, _ = await core.allocate(AllocationRequest(pod("general")))
    assert general.ips[0] not in ("10.5.0.2", "10.5.0.3")  # pool members are not for everyone
    a, _ = await core.allocate(AllocationRequest(pod("a"), pool="db"))
    b, _ = await core.allocate(AllocationRequest(pod("b"), pool="db"))
    assert sorted(a.ips + b.ips) == ["10.5.0.2", "10.5.0.3"]
    with expect(ResourceExhausted, "pool", "'db'"):
        await core.allocate(AllocationRequest(pod("c"), pool="db"))
    with expect(InvalidArgument, "ips", "belongs to pool 'db'"):
        await core.allocate(AllocationRequest(pod("c"), ips=["10.5.0.2"]))
    with expect(NotFound, "pool", "nope"):
        await core.allocate(AllocationRequest(pod("c"), pool="nope"))
    with expect(FailedPrecondition, "name", "2 live"):
        await core.delete_pool("net1", "db")
    assert [p.name for p in core.list_pools("net1")] == ["db"]
    await core.release(pod("a"))
    await core.release(pod("b"))
    await core.delete_pool("net1", "db")
    assert core.list_pools() == []


# ---- subnet changes against live allocations -----------------------------------


async def test_delete_subnet_with_allocations_is_refused(core: IpamCore) -> None:
    await subnet(core)
    for i in range(7):
        await core.allocate(AllocationRequest(pod(f"p{i}")))
    with expect(FailedPrecondition, "name", "7 live", "and 2 more"):
        await core.delete_subnet("net1")
    assert core.get_subnet("net1")
    for i in range(7):
        await core.release(pod(f"p{i}"))
    await core.delete_subnet("net1")
    assert core.list_subnets() == []
    assert (await core.store.load()).subnets == []


async def test_update_subnet_guards_live_allocations(core: IpamCore) -> None:
    await subnet(core, "net1", "10.7.0.0/24")
    rec, _ = await core.allocate(AllocationRequest(pod("a"), ips=["10.7.0.130"]))
    for cidrs, excludes, word in [
        (["10.7.0.0/25"], [], "outside"),
        (["10.7.0.0/24"], ["10.7.0.128/26"], "excluded"),
        (["10.7.0.0/24", "fd00::/64"], [], ""),  # fine: adds IPv6
    ]:
        spec = SubnetSpec("net1", cidrs, [], excludes)
        if word:
            with expect(FailedPrecondition, "subnet", "10.7.0.130", word):
                await core.update_subnet(spec)
            assert core.get_subnet("net1").cidrs == ["10.7.0.0/24"]
            (stored,) = (await core.store.load()).subnets
            assert (stored.cidrs, stored.excludes) == (["10.7.0.0/24"], [])
        else:
            new = await core.update_subnet(spec)
            assert new.gateways == ["10.7.0.1", "fd00::1"]
    with expect(FailedPrecondition, "subnet", "is the gateway"):
        await core.update_subnet(SubnetSpec("net1", ["10.7.0.0/24"], ["10.7.0.130"]))
    # Allocations keep working after the update, and the old one is kept.
    assert (await core.get_allocation(pod("a"))).ips == rec.ips
    other, _ = await core.allocate(AllocationRequest(pod("b")))
    assert len(other.ips) == 2


# ---- listing, usage, reconcile, restart ----------------------------------------


async def test_list_allocations_filters_and_pages(core: IpamCore) -> None:
    await subnet(core, "net1", "10.8.0.0/24")
    await subnet(core, "net2", "10.9.0.0/24")
    for i in range(7):
        await core.allocate(AllocationRequest(pod(f"p{i}", ns="a" if i % 2 else "b")))
    await core.allocate(AllocationRequest(pod("z", network="net2")))
    seen, token = [], ""
    while True:
        page, token = core.list_allocations(subnet="net1", page_size=3, page_token=token)
        assert len(page) <= 3
        seen += [r.owner.pod for r in page]
        if not token:
            break
    assert sorted(seen) == [f"p{i}" for i in range(7)]
    assert seen == [r.owner.pod for r in core.list_allocations(subnet="net1")[0]]
    assert [r.owner.pod for r in core.list_allocations(namespace="a")[0]] == ["p1", "p3", "p5"]
    assert [r.owner.pod for r in core.list_allocations(pod="z")[0]] == ["z"]
    with expect(InvalidArgument, "page_size", "5001"):
        core.list_allocations(page_size=5001)


async def test_usage_counts(core: IpamCore) -> None:
    await subnet(core, "net1", "10.4.0.0/24", "fd00:4::/64", excludes=("10.4.0.10-10.4.0.19",))
    await core.create_pool(PoolSpec("net1", "p", ["10.4.0.100-10.4.0.103"]))
    for i in range(3):
        await core.allocate(AllocationRequest(pod(f"p{i}")))
    await core.release(pod("p0"))
    v4, v6 = core.usage("net1")
    assert (v4.total, v4.used, v4.cooling, v4.excluded, v4.pooled) == (256, 2, 1, 13, 4)
    assert v4.free == 256 - 13 - 4 - 2 - 1
    assert (v6.total, v6.used, v6.excluded) == (2**64, 2, 2)


async def test_reconcile_releases_dead_owners_only(core: IpamCore, clock: Clock) -> None:
    await subnet(core)
    for name in ("alive", "dead1", "dead2"):
        await core.allocate(AllocationRequest(pod(name)))
    cutoff = clock()
    clock.advance(1)
    await core.allocate(AllocationRequest(pod("newborn")))  # allocated after the live set was taken
    dry = await core.reconcile([pod("alive")], allocated_before_ms=cutoff + 1, dry_run=True)
    assert sorted(r.owner.pod for r in dry) == ["dead1", "dead2"]
    assert len(core.alloc.owners) == 4
    freed = await core.reconcile([pod("alive")], allocated_before_ms=cutoff + 1)
    assert sorted(r.owner.pod for r in freed) == ["dead1", "dead2"]
    assert sorted(o.split("/")[2] for o in core.alloc.owners) == ["alive", "newborn"]
    assert sorted(r.owner.pod for r in await core.store.list_allocations()) == ["alive", "newborn"]


async def test_state_survives_restart(make_core: Any, clock: Clock) -> None:
    first: IpamCore = await make_core()
    await subnet(first, "net1", "10.10.0.0/29")
    recs = {i: (await first.allocate(AllocationRequest(pod(f"p{i}"))))[0] for i in range(4)}
    await first.release(pod("p0"))
    await first.store.close()  # the process ends (SQLite allows one at a time)
    second: IpamCore = await make_core()
    assert (await second.get_allocation(pod("p1"))).ips == recs[1].ips
    assert (await second.get_allocation(pod("p1"))).mac == recs[1].mac
    # p0's address is cooling in the new process too: the only free one is left.
    taken = {ip for r in recs.values() for ip in r.ips}
    (free,) = {f"10.10.0.{n}" for n in range(2, 7)} - taken
    last, _ = await second.allocate(AllocationRequest(pod("x")))
    assert last.ips == [free]
    with expect(ResourceExhausted, "owner.network", "1 cooling"):
        await second.allocate(AllocationRequest(pod("y")))


async def test_update_subnet_keeps_pools_whole(core: IpamCore) -> None:
    await subnet(core, "net1", "10.11.0.0/24")
    await core.create_pool(PoolSpec("net1", "edge", ["10.11.0.200-10.11.0.210"]))
    with expect(FailedPrecondition, "subnet", "'edge'", "10.11.0.200"):
        await core.update_subnet(SubnetSpec("net1", ["10.11.0.0/25"], [], []))
    with expect(FailedPrecondition, "subnet", "'edge'", "10.11.0.205"):
        await core.update_subnet(SubnetSpec("net1", ["10.11.0.0/24"], [], ["10.11.0.205"]))
    assert core.get_subnet("net1").cidrs == ["10.11.0.0/24"]
    rec, _ = await core.allocate(AllocationRequest(pod("e"), pool="edge"))
    assert rec.ips[0].startswith("10.11.0.2")


async def test_two_replicas_agree_without_waiting_for_each_other(
    etcd_stores: Stores, clock: Clock
) -> None:
    """Replicas on one etcd: every answer is right even before the watch catches up."""
    stores = etcd_stores
    a = IpamCore(await stores.open(), cooldown_seconds=30, spread=True, clock=clock)
    b = IpamCore(await stores.open(), cooldown_seconds=30, spread=True, clock=clock)
    await a.start()
    await b.start()
    await subnet(a, "net1", "10.12.0.0/24")
    first, reused = await b.allocate(
        AllocationRequest(pod("x"))
    )  # b has not seen the subnet: it re-reads
    assert not reused
    same, reused = await a.allocate(
        AllocationRequest(pod("x"))
    )  # the store already has x: same answer
    assert reused and same.ips == first.ips and same.mac == first.mac
    seen = await a.get_allocation(pod("x"))
    assert (seen.ips, seen.mac) == (first.ips, first.mac)
    await a.create_pool(PoolSpec("net1", "db", ["10.12.0.200-10.12.0.201"]))
    from_pool, _ = await b.allocate(
        AllocationRequest(pod("db-0"), pool="db")
    )  # b re-reads for the pool
    assert from_pool.ips[0] in ("10.12.0.200", "10.12.0.201")
    await a.allocate(AllocationRequest(pod("fixed"), ips=["10.12.0.99"]))
    with expect(AlreadyExists, "ips", "10.12.0.99", "net1/default/fixed/eth0"):
        await b.allocate(AllocationRequest(pod("other"), ips=["10.12.0.99"]))
    assert [r.owner for r in await a.release(pod("x"))] == [pod("x")]
    assert await b.release(pod("x")) == []  # b's copy may be stale: the store decides
    again, reused = await b.allocate(AllocationRequest(pod("x")))
    assert not reused
    assert [r.ips for r in await a.release(pod("x"))] == [again.ips]
    records = await stores.opened[0].list_allocations("net1")
    assert sorted(r.owner.pod for r in records) == ["db-0", "fixed"]


async def test_etcd_endpoint_failover(etcd_stores: Stores, clock: Clock) -> None:
    """A dead first endpoint costs one failed attempt, not the service."""
    stores = etcd_stores
    from sandbox.testbed.procs import free_port
    from services.ipam.store.etcd import EtcdStore

    assert stores.etcd is not None
    dead = f"127.0.0.1:{free_port()}"
    store = EtcdStore([dead, stores.etcd.endpoint], prefix=stores.prefix)
    await store.open()
    stores.opened.append(store)
    core = IpamCore(store, cooldown_seconds=30, clock=clock)
    await core.start()
    await subnet(core)
    rec, _ = await core.allocate(AllocationRequest(pod("a")))
    assert [r.ips for r in await store.list_allocations()] == [rec.ips]
    only_dead = EtcdStore([dead], prefix=stores.prefix)
    with pytest.raises(Unavailable, match="unreachable"):
        await only_dead.open()
    await only_dead.close()


async def test_cancelled_calls_leave_memory_and_store_agreeing(core: IpamCore) -> None:
    """A client that gives up while its write is in flight: store and memory still agree."""
    await subnet(core)
    store = core.store
    real = store.create_allocation
    in_flight = asyncio.Event()

    async def signalling(rec: Any, revision: int) -> int:
        in_flight.set()  # instrumentation only: the real store does the work
        return await real(rec, revision)

    store.create_allocation = signalling  # type: ignore[method-assign, assignment]
    for k in range(5):
        in_flight.clear()
        task = asyncio.create_task(core.allocate(AllocationRequest(pod(f"c{k}"))))
        await in_flight.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    # The writes land although every caller gave up; memory follows them.
    # (Polled: the shielded write tasks are internal, with no event to await.)
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        stored = {r.owner.key for r in await store.list_allocations()}
        if len(stored) == 5 and set(core.alloc.owners) == stored:
            break
        assert asyncio.get_running_loop().time() < deadline, (stored, set(core.alloc.owners))
        await asyncio.sleep(0.01)
    held = {ip for r in core.alloc.owners.values() for ip in r.ips}
    again, _ = await core.allocate(AllocationRequest(pod("after")))
    assert not set(again.ips) & held


async def test_a_release_seen_from_another_replica_still_cools_down(core: IpamCore) -> None:
    """The owner's deletion and its cool-down record can reach a replica apart."""
    await subnet(core, "net1", "10.13.0.0/29")  # five usable addresses
    recs = [(await core.allocate(AllocationRequest(pod(f"p{i}"))))[0] for i in range(5)]
    # As the watch reports another replica's release, before its cool-down record:
    core.allocation_deleted(recs[0].owner.key)
    with expect(ResourceExhausted, "owner.network", "1 cooling down"):
        await core.allocate(AllocationRequest(pod("new")))
    # The record then arrives (or had arrived first): still cooling until it ends.
    core.cooling_put(Cooling("net1", recs[0].ips[0], core.now_ms() + 1000, recs[0].owner.key))
    with expect(ResourceExhausted, "owner.network", "1 cooling down"):
        await core.allocate(AllocationRequest(pod("new")))


async def test_etcd_enforces_cool_down_against_a_stale_replica(
    etcd_stores: Stores, clock: Clock
) -> None:
    """A replica whose view missed everything still cannot take a cooling address."""
    stores = etcd_stores
    a = IpamCore(await stores.open(), cooldown_seconds=30, spread=True, clock=clock)
    await a.start()
    await subnet(a, "net1", "10.14.0.0/29")  # five usable addresses
    blind = IpamCore(await stores.open(), cooldown_seconds=30, spread=True, clock=clock)
    blind.rebuild(await blind.store.load())  # knows the subnet, never watches
    for i in range(5):
        await a.allocate(AllocationRequest(pod(f"p{i}")))
    (released,) = await a.release(pod("p0"))
    with expect(ResourceExhausted, "owner.network", "1 cooling down"):
        await blind.allocate(AllocationRequest(pod("new")))
    with expect(Unavailable, "ips", "cools down"):
        await blind.allocate(AllocationRequest(pod("new"), ips=released.ips))
    # The previous owner may still take its address back.
    back, _ = await blind.allocate(AllocationRequest(pod("p0"), ips=released.ips))
    assert back.ips == released.ips
    assert len(await blind.store.list_allocations("net1")) == 5


async def test_etcd_group_commit_gives_each_caller_its_own_answer(
    etcd_stores: Stores, clock: Clock
) -> None:
    """Allocations share transactions; one refused member does not sink the rest."""
    stores = etcd_stores
    from prometheus_client import REGISTRY

    def sample(name: str) -> float:
        return REGISTRY.get_sample_value(name) or 0.0

    a = IpamCore(await stores.open(), cooldown_seconds=30, spread=True, clock=clock)
    await a.start()
    await subnet(a, "net1", "10.15.0.0/24")
    blind = IpamCore(await stores.open(), cooldown_seconds=30, spread=True, clock=clock)
    blind.rebuild(await blind.store.load())  # never hears of a's allocations
    await a.allocate(AllocationRequest(pod("holder"), ips=["10.15.0.77"]))
    batches, failures = (
        sample("kovn_ipam_etcd_txn_allocations_count"),
        sample("kovn_ipam_etcd_batch_failures_total"),
    )
    grouped = sample("kovn_ipam_etcd_txn_allocations_sum")
    results = await asyncio.gather(
        blind.allocate(AllocationRequest(pod("thief"), ips=["10.15.0.77"])),
        *(blind.allocate(AllocationRequest(pod(f"p{i}"))) for i in range(40)),
        return_exceptions=True,
    )
    thief, rest = results[0], results[1:]
    assert isinstance(thief, AlreadyExists) and "net1/default/holder/eth0" in str(thief)
    ips = [r[0].ips[0] for r in rest if isinstance(r, tuple)]
    assert len(ips) == 40 and len(set(ips)) == 40 and "10.15.0.77" not in ips
    calls = sample("kovn_ipam_etcd_txn_allocations_count") - batches
    carried = sample("kovn_ipam_etcd_txn_allocations_sum") - grouped
    assert calls < carried  # some transactions carried several allocations
    assert sample("kovn_ipam_etcd_batch_failures_total") > failures
    stored = await blind.store.list_allocations("net1")
    assert len(stored) == 41


async def test_store_refuses_a_duplicate_among_concurrent_writes(stores: Stores) -> None:
    """Whatever the allocator believes, the store never holds an address or MAC twice."""
    from services.ipam.model import AllocationRecord
    from services.ipam.store.base import AddressTaken, MacTaken, OwnerExists

    store = await stores.open()
    spec = SubnetSpec("net1", ["10.16.0.0/24"], ["10.16.0.1"], [])
    revision = await store.create_subnet(spec)

    def rec(name: str, ip: str, mac: str) -> AllocationRecord:
        return AllocationRecord(pod(name), [ip], mac, created_ms=1)

    good = [rec(f"g{i}", f"10.16.0.{10 + i}", f"0a:00:00:00:00:{i:02x}") for i in range(20)]
    rivals = {  # each collides with one good record; which of the two wins is a race
        0: (rec("dup-ip", "10.16.0.10", "0a:00:00:00:01:01"), AddressTaken),
        5: (rec("dup-mac", "10.16.0.99", "0a:00:00:00:00:05"), MacTaken),
        9: (rec("g9", "10.16.0.98", "0a:00:00:00:01:02"), OwnerExists),
    }
    records = [*good[:10], *(r for r, _ in rivals.values()), *good[10:]]
    results = await asyncio.gather(
        *(store.create_allocation(r, revision) for r in records), return_exceptions=True
    )
    outcome = dict(zip((id(r) for r in records), results, strict=True))
    for i, (rival, refusal) in rivals.items():
        pair = [outcome[id(good[i])], outcome[id(rival)]]
        lost = [r for r in pair if isinstance(r, BaseException)]
        assert len(lost) == 1 and isinstance(lost[0], refusal), pair
    others = [outcome[id(g)] for i, g in enumerate(good) if i not in rivals]
    assert not [r for r in others if isinstance(r, BaseException)]
    stored = await store.list_allocations("net1")
    assert len(stored) == 20
    ips = [ip for r in stored for ip in r.ips]
    assert len(set(ips)) == len(ips) and len({r.mac for r in stored}) == 20


async def test_etcd_subnet_checks_see_other_replicas(etcd_stores: Stores, clock: Clock) -> None:
    """A replica that missed another's subnet change re-reads before deciding."""
    a = IpamCore(await etcd_stores.open(), cooldown_seconds=30, spread=True, clock=clock)
    await a.start()
    blind = IpamCore(await etcd_stores.open(), cooldown_seconds=30, spread=True, clock=clock)
    blind.rebuild(await blind.store.load())  # never watches
    await subnet(a, "big", "10.60.0.0/16")
    with expect(AlreadyExists, "subnet.cidrs", "'big'"):
        await subnet(blind, "small", "10.60.5.0/24")
    await a.allocate(AllocationRequest(pod("x", network="big")))
    with expect(FailedPrecondition, "name", "1 live"):
        await blind.delete_subnet("big")
    assert [s.name for s in (await a.store.load()).subnets] == ["big"]


async def test_sqlite_serves_one_process_at_a_time(tmp_path: Any) -> None:
    """A second ipam on the same SQLite file is refused, and allowed once the first ends."""
    from services.ipam.store.sqlite import SqliteStore

    path = str(tmp_path / "one.db")
    first = SqliteStore(path)
    await first.open()
    second = SqliteStore(path)
    with pytest.raises(Unavailable, match="another ipam process"):
        await second.open()
    await first.close()
    await second.open()
    await second.close()
