"""etcd store: many ipam replicas share one etcd (v3 API over gRPC).

With several replicas the store, not any replica's memory, must decide who
gets an address, and every replica must hear what the others did. This
module is the store's face (the Store interface); the pieces it is built
from each have a module of their own: etcd_keys.py (the key layout),
etcd_client.py (calls and failover), etcd_batch.py (creating allocations,
in group commits), etcd_watch.py (following other replicas).

Subnet and pool changes are serialised on one key (P/meta/subnets) that
each of them compares and touches. Those that must respect live
allocations read the subnet's allocations, check them, and write only if no
allocation key of the subnet changed since that read (a range compare on
mod_revision).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from services.common.errors import AlreadyExists, Conflict, NotFound
from services.common.tasks import cancel_and_wait
from services.ipam.model import AllocationRecord, Cooling, PoolSpec, Snapshot, SubnetSpec
from services.ipam.store.base import AllocationCheck, Changes, Store
from services.ipam.store.etcd_batch import GroupCommit
from services.ipam.store.etcd_client import (
    EtcdClient,
    absent,
    delete,
    get,
    mod_is,
    put,
    unchanged_since,
)
from services.ipam.store.etcd_keys import Keys
from services.ipam.store.etcd_watch import EtcdWatch
from services.ipam.store.etcdpb import etcd_subset_pb2 as pb

_RETRIES = 8


class EtcdStore(Store):
    kind = "etcd"

    def __init__(self, endpoints: Sequence[str], *, prefix: str = "/kovn/ipam") -> None:
        self.client = EtcdClient(endpoints)
        self.keys = Keys(prefix)
        self.k = self.keys.k
        self._allocations = GroupCommit(self.client, self.keys)
        self._watch_task: asyncio.Task[None] | None = None
        self._revision = 0  # store revision the loaded snapshot reflects
        self._meta_rev = 0  # mod_revision of P/meta/subnets we last saw
        # Told whether etcd answers, from the watch stream's health (the
        # service turns it into its grpc.health status).
        self.on_availability: Callable[[bool], None] = lambda ok: None

    # ---- connection ----------------------------------------------------------

    async def open(self) -> None:
        self.client.connect()
        # Fail at start, not on the first allocation, if etcd is unreachable.
        await self.client.range(self.k("meta", "subnets"))

    async def close(self) -> None:
        await cancel_and_wait(self._watch_task)
        self._watch_task = None
        await self.client.close()

    # ---- reads ---------------------------------------------------------------

    async def load(self) -> Snapshot:
        # One read-only transaction: a consistent snapshot in one round trip,
        # without the address and MAC index keys (the records carry those).
        ranges = [
            get(self.k(part, ""), prefix=True) for part in ("subnets", "pools", "owners", "cooling")
        ]
        resp = await self.client.txn([], [*ranges, get(self.k("meta", "subnets"))])
        subnets, pools, owners, cooling, meta = (r.response_range.kvs for r in resp.responses)
        snap = Snapshot(revision=resp.header.revision)
        snap.subnets = [SubnetSpec.from_json(kv.value, kv.mod_revision) for kv in subnets]
        snap.pools = [PoolSpec.from_json(kv.value) for kv in pools]
        snap.allocations = [AllocationRecord.from_json(kv.value, kv.mod_revision) for kv in owners]
        snap.cooling = [Cooling.from_json(kv.value) for kv in cooling]
        for kv in meta:
            self._meta_rev = kv.mod_revision
        self._revision = max(self._revision, snap.revision)
        return snap

    async def get_allocation(self, owner_key: str) -> AllocationRecord | None:
        resp = await self.client.range(self.k("owners", owner_key))
        for kv in resp.kvs:
            return AllocationRecord.from_json(kv.value, kv.mod_revision)
        return None

    async def _subnet_allocations(self, subnet: str) -> tuple[list[AllocationRecord], int]:
        resp = await self.client.range(self.k("owners", subnet, ""), prefix=True)
        records = [AllocationRecord.from_json(kv.value, kv.mod_revision) for kv in resp.kvs]
        return records, resp.header.revision

    async def list_allocations(self, subnet: str = "") -> list[AllocationRecord]:
        key = self.k("owners", subnet, "") if subnet else self.k("owners", "")
        resp = await self.client.range(key, prefix=True)
        return [AllocationRecord.from_json(kv.value, kv.mod_revision) for kv in resp.kvs]

    # ---- watch ---------------------------------------------------------------

    async def watch(self, changes: Changes) -> None:
        def meta_seen(revision: int) -> None:
            if revision > self._meta_rev:
                self._meta_rev = revision
                changes.subnets_changed()

        watch = EtcdWatch(
            self.client,
            self.keys,
            changes,
            on_meta=meta_seen,
            # Looked up on each report: the service sets it after start.
            on_availability=lambda ok: self.on_availability(ok),
        )
        self._watch_task = asyncio.get_running_loop().create_task(watch.run(self._revision + 1))

    # ---- subnets and pools ---------------------------------------------------

    def _meta_ops(self) -> tuple[pb.Compare, pb.RequestOp]:
        """Subnet/pool changes are serialised on one key: compare and touch it."""
        meta = self.k("meta", "subnets")
        return mod_is(meta, self._meta_rev), put(meta, b"")

    def _stale(self) -> Conflict:
        # The caller re-reads subnets (load() also moves _meta_rev, from the
        # same snapshot) before trying again, so checks like overlap run on
        # what another replica just wrote.
        return Conflict("subnets were changed by another replica at the same time; retry")

    async def create_subnet(self, spec: SubnetSpec) -> int:
        key = self.k("subnets", spec.name)
        meta_cmp, meta_put = self._meta_ops()
        resp = await self.client.txn(
            [absent(key), meta_cmp],
            [put(key, spec.to_json()), meta_put],
            [get(key)],
        )
        if not resp.succeeded:
            if resp.responses[0].response_range.kvs:
                raise AlreadyExists(f"subnet {spec.name!r} exists", field="subnet.name")
            raise self._stale()
        self._meta_rev = resp.header.revision
        return resp.header.revision

    async def _subnet(self, name: str, field: str) -> pb.KeyValue:
        resp = await self.client.range(self.k("subnets", name))
        if not resp.kvs:
            raise NotFound(f"no subnet {name!r}", field=field)
        kv: pb.KeyValue = resp.kvs[0]
        return kv

    async def _checked_write(
        self,
        subnet: str,
        field: str,
        check: AllocationCheck,
        ops: Sequence[pb.RequestOp],
        *,
        pool: str = "",
        touch_subnet: bool = False,
    ) -> int:
        """Write `ops` if `check` accepts the subnet's allocations, atomically.

        touch_subnet: also re-write the subnet as read (bumping its revision,
        so allocations planned before the change are planned again).
        """
        subnet_key = self.k("subnets", subnet)
        for _ in range(_RETRIES):
            current = await self._subnet(subnet, field)
            records, read_at = await self._subnet_allocations(subnet)
            check([r for r in records if r.pool == pool] if pool else records)
            meta_cmp, meta_put = self._meta_ops()
            compare = [
                mod_is(subnet_key, current.mod_revision),
                unchanged_since(self.k("owners", subnet, ""), read_at),
                meta_cmp,
            ]
            touch = [put(subnet_key, current.value)] if touch_subnet else []
            resp = await self.client.txn(compare, [*ops, *touch, meta_put])
            if resp.succeeded:
                self._meta_rev = resp.header.revision
                return resp.header.revision
            # Lost against an allocation or another change: read again.
            await self.load()
        raise self._stale()

    async def update_subnet(self, spec: SubnetSpec, check: AllocationCheck) -> int:
        key = self.k("subnets", spec.name)
        return await self._checked_write(
            spec.name, "subnet.name", check, [put(key, spec.to_json())]
        )

    async def delete_subnet(self, name: str, check: AllocationCheck) -> None:
        ops = [
            delete(self.k("subnets", name)),
            delete(self.k("pools", name, ""), prefix=True),
            delete(self.k("cooling", name, ""), prefix=True),
            delete(self.k("ips", name, ""), prefix=True),
        ]
        await self._checked_write(name, "name", check, ops)

    async def create_pool(self, pool: PoolSpec) -> int:
        sub = await self.client.range(self.k("subnets", pool.subnet))
        if not sub.kvs:
            raise NotFound(f"no subnet {pool.subnet!r}", field="pool.subnet")
        key = self.k("pools", pool.subnet, pool.name)
        meta_cmp, meta_put = self._meta_ops()
        # Re-writing the subnet bumps its revision: allocations planned
        # without the pool fail their compare and are planned again.
        subnet_key, subnet = self.k("subnets", pool.subnet), sub.kvs[0]
        resp = await self.client.txn(
            [absent(key), meta_cmp, mod_is(subnet_key, subnet.mod_revision)],
            [put(key, pool.to_json()), put(subnet_key, subnet.value), meta_put],
            [get(key)],
        )
        if not resp.succeeded:
            if resp.responses[0].response_range.kvs:
                raise AlreadyExists(
                    f"pool {pool.name!r} exists in subnet {pool.subnet!r}", field="pool.name"
                )
            raise self._stale()
        self._meta_rev = resp.header.revision
        return resp.header.revision

    async def delete_pool(self, subnet: str, name: str, check: AllocationCheck) -> int:
        key = self.k("pools", subnet, name)
        if not (await self.client.range(key)).kvs:
            raise NotFound(f"no pool {name!r} in subnet {subnet!r}", field="name")
        # The subnet is re-written from the same read its revision is compared
        # with: a concurrent update of it is never undone.
        return await self._checked_write(
            subnet, "subnet", check, [delete(key)], pool=name, touch_subnet=True
        )

    # ---- allocations ---------------------------------------------------------

    async def create_allocation(self, rec: AllocationRecord, subnet_revision: int) -> int:
        return await self._allocations.create(rec, subnet_revision)

    async def release(self, rec: AllocationRecord, cooling: Sequence[Cooling]) -> bool:
        net = rec.owner.network
        owner_key = self.k("owners", rec.owner.key)
        resp = await self.client.txn(
            [mod_is(owner_key, rec.revision)],
            [
                delete(owner_key),
                *(delete(self.k("ips", net, ip)) for ip in rec.ips),
                delete(self.k("macs", rec.mac)),
                *(put(self.k("cooling", c.subnet, c.ip), c.to_json()) for c in cooling),
            ],
        )
        return bool(resp.succeeded)
