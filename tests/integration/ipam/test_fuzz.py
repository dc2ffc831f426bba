"""Arbitrary request fields never make ipam fail with anything but a typed error.

INTERNAL means a bug: every malformed name, CIDR, address, range or MAC must
come back as a KovnError (a gRPC status with the field named), and the
store must stay consistent with memory afterwards.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.api.ipam.v1 import ipam_pb2
from services.common.errors import InvalidArgument, KovnError
from services.ipam.core import IpamCore
from services.ipam.servicer import IpamServicer
from services.ipam.store.sqlite import SqliteStore

texts = st.one_of(
    st.sampled_from(
        [
            "",
            "net",
            "10.0.0.0/24",
            "10.0.0.0/33",
            "fd00::/64",
            "10.0.0.5",
            "10.0.0.9-10.0.0.1",
            "::",
            "0.0.0.0/0",
            "10.0.0.0/30",
            "a/b",
            "0a:58:00:00:00:01",
            "01:00:5e:00:00:01",
            "10.0.0.300",
            "fd00::1-fd00::ffff",
            " 10.0.0.7 ",
            "x" * 300,
            "ns/pod",
            "eth0",
        ]
    ),
    st.text(max_size=20),
)


def subnet_msg() -> st.SearchStrategy[ipam_pb2.Subnet]:
    return st.builds(
        ipam_pb2.Subnet,
        name=st.sampled_from(["net", "other", "", "bad name"]),
        cidrs=st.lists(texts, max_size=3),
        gateways=st.lists(texts, max_size=2),
        excludes=st.lists(texts, max_size=3),
    )


valid_owners = st.builds(
    ipam_pb2.Owner,
    network=st.just("net"),
    namespace=st.sampled_from(["ns", "kube-system"]),
    pod=st.sampled_from([f"p{i}" for i in range(8)]),
    nic=st.sampled_from(["", "eth0", "net1"]),
)
odd_owners = st.builds(
    ipam_pb2.Owner,
    network=st.sampled_from(["net", "other", "", "n/x"]),
    namespace=st.sampled_from(["ns", "", "a b"]),
    pod=texts,
    nic=st.sampled_from(["", "eth0", "x/y"]),
)
# Mostly well-formed owners, so that allocations succeed and state builds up.
owners = st.integers(0, 3).flatmap(lambda i: odd_owners if i == 0 else valid_owners)

requests = st.one_of(
    st.builds(lambda s: ("CreateSubnet", ipam_pb2.CreateSubnetRequest(subnet=s)), subnet_msg()),
    st.builds(lambda s: ("UpdateSubnet", ipam_pb2.UpdateSubnetRequest(subnet=s)), subnet_msg()),
    st.builds(lambda o: ("Allocate", ipam_pb2.AllocateRequest(owner=o)), owners),
    st.builds(lambda o: ("Allocate", ipam_pb2.AllocateRequest(owner=o)), owners),
    st.builds(
        lambda o, ips, mac, pool, fam: (
            "Allocate",
            ipam_pb2.AllocateRequest(owner=o, ips=ips, mac=mac, pool=pool, families=fam),
        ),
        owners,
        st.lists(texts, max_size=2),
        texts,
        st.sampled_from(["", "pool", "nope"]),
        st.lists(st.sampled_from([0, 1, 2, 3]), max_size=2),
    ),
    st.builds(lambda o: ("Release", ipam_pb2.ReleaseRequest(owner=o)), owners),
    st.builds(
        lambda n, ip: ("ReleaseAddress", ipam_pb2.ReleaseAddressRequest(subnet=n, ip=ip)),
        st.sampled_from(["net", "zz"]),
        texts,
    ),
    st.builds(
        lambda a: (
            "CreatePool",
            ipam_pb2.CreatePoolRequest(pool=ipam_pb2.Pool(subnet="net", name="pool", addresses=a)),
        ),
        st.lists(texts, max_size=3),
    ),
    st.builds(
        lambda t, n: (
            "ListAllocations",
            ipam_pb2.ListAllocationsRequest(page_token=t, page_size=n),
        ),
        texts,
        st.integers(-5, 6000),
    ),
    st.builds(lambda n: ("DeleteSubnet", ipam_pb2.DeleteSubnetRequest(name=n)), texts),
    st.builds(lambda n: ("GetUsage", ipam_pb2.GetUsageRequest(subnet=n)), texts),
    st.builds(
        lambda live: ("Reconcile", ipam_pb2.ReconcileRequest(live=live, dry_run=True)),
        st.lists(owners, max_size=2),
    ),
)


async def _scenario(calls: list[tuple[str, Any]]) -> None:
    store = SqliteStore(":memory:")
    await store.open()
    try:
        core = IpamCore(store, cooldown_seconds=30)
        await core.start()
        servicer = IpamServicer(core)
        ok = ipam_pb2.Subnet(name="net", cidrs=["10.0.0.0/28", "fd00::/124"])
        await servicer.CreateSubnet(ipam_pb2.CreateSubnetRequest(subnet=ok), None)  # type: ignore[arg-type]
        for method, request in calls:
            try:
                await getattr(servicer, method)(request, None)
            except KovnError as err:
                if isinstance(err, InvalidArgument):
                    assert err.field, f"{method}: InvalidArgument without a field: {err}"
        stored = {r.owner.key: r for r in await store.list_allocations()}
        assert set(stored) == set(core.alloc.owners)
        ips = [ip for r in stored.values() for ip in r.ips]
        assert len(ips) == len(set(ips))
    finally:
        await store.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(requests, min_size=1, max_size=12))
def test_no_request_is_an_internal_error(calls: list[tuple[str, Any]]) -> None:
    asyncio.run(_scenario(calls))
