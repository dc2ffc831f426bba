"""Creating allocations in etcd: group commit, and a precise answer per refusal.

Every allocation is created in ONE transaction comparing the owner, address
and MAC keys' create_revision with 0, the addresses' cool-down keys with
absent (or with the version found expired), and the subnet's mod_revision
with the one the allocator planned with; two replicas can therefore never
both win one address, a replica with a stale view cannot take a cooling
address, and nobody allocates against a subnet definition that changed.

One transaction per allocation would cost one raft entry and one watch
message per replica each. Allocations that arrive while a transaction is in
flight therefore go together into the next one (within etcd's 128
compares). A grouped transaction that fails is retried one allocation at a
time, whose failure branch reads the keys back, so each refusal names its
holder precisely.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

from prometheus_client import Counter, Histogram

from services.common.errors import Unavailable
from services.ipam.model import AllocationRecord, Cooling
from services.ipam.store.base import (
    AddressCooling,
    AddressTaken,
    MacTaken,
    OwnerExists,
    SubnetChanged,
)
from services.ipam.store.etcd_client import (
    EtcdClient,
    EtcdUnreachable,
    absent,
    delete,
    get,
    mod_is,
    put,
)
from services.ipam.store.etcd_keys import Keys
from services.ipam.store.etcdpb import etcd_subset_pb2 as pb

BATCH = Histogram(
    "kovn_ipam_etcd_txn_allocations",
    "Allocations carried by one etcd transaction (group commit).",
    buckets=(1, 2, 4, 8, 16, 32),
)
BATCH_FAILED = Counter(
    "kovn_ipam_etcd_batch_failures_total",
    "Grouped transactions refused as a whole and retried one allocation at a time.",
)

_RETRIES = 8
# etcd refuses transactions with more than --max-txn-ops (default 128)
# compares or operations.
_TXN_OPS = 128
# Transactions in flight at once from one replica: one is being answered
# while the next fills up.
_FLUSHERS = 2

Pending = tuple[AllocationRecord, int, "asyncio.Future[int]"]


@dataclass(frozen=True)
class _RecordKeys:
    """The keys one allocation writes, compares or reads back."""

    subnet: bytes
    owner: bytes
    ips: list[bytes]
    cooling: list[bytes]
    mac: bytes


class GroupCommit:
    def __init__(self, client: EtcdClient, keys: Keys) -> None:
        self.client = client
        self.keys = keys
        self._queue: deque[Pending] = deque()
        self._flushers = 0

    async def create(self, rec: AllocationRecord, subnet_revision: int) -> int:
        """Create the allocation or raise a StoreRefusal; returns its revision."""
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.append((rec, subnet_revision, fut))
        if self._flushers < _FLUSHERS:
            self._flushers += 1
            asyncio.get_running_loop().create_task(self._flush())
        return await fut

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch: list[Pending] = []
                compares = ops = 0
                keys: set[str] = set()  # etcd refuses a key written twice in one txn
                while self._queue:
                    rec = self._queue[0][0]
                    n = len(rec.ips)
                    mine = {
                        rec.owner.key,
                        rec.mac,
                        *(f"{rec.owner.network}/{ip}" for ip in rec.ips),
                    }
                    if batch and (
                        compares + 3 + 2 * n > _TXN_OPS
                        or ops + 2 + 2 * n > _TXN_OPS
                        or not keys.isdisjoint(mine)
                    ):
                        break
                    batch.append(self._queue.popleft())
                    compares, ops = compares + 3 + 2 * n, ops + 2 + 2 * n
                    keys |= mine
                try:
                    await self._commit_batch(batch)
                except BaseException:
                    for _, _, fut in batch:
                        if not fut.done():
                            fut.set_exception(Unavailable("etcd store is closing"))
                    raise
        finally:
            self._flushers -= 1

    async def _commit_batch(self, batch: list[Pending]) -> None:
        async def one(rec: AllocationRecord, revision: int, fut: asyncio.Future[int]) -> None:
            try:
                result = await self._create_one(rec, revision)
            except Exception as err:  # handed to the waiting caller
                if not fut.done():
                    fut.set_exception(err)
            else:
                if not fut.done():
                    fut.set_result(result)

        BATCH.observe(len(batch))
        if len(batch) > 1:
            compare: list[pb.Compare] = []
            success: list[pb.RequestOp] = []
            for rec, revision, _ in batch:
                c, s = self._allocation_ops(rec, self._keys_of(rec), revision, {})
                compare += c
                success += s
            try:
                resp = await self.client.txn(compare, success)
            except EtcdUnreachable as err:  # every caller hears it
                for _, _, fut in batch:
                    if not fut.done():
                        fut.set_exception(err)
                return
            except Unavailable:
                resp = None  # refused as a request (a limit): one by one below
            if resp is not None and resp.succeeded:
                for _, _, fut in batch:
                    if not fut.done():
                        fut.set_result(int(resp.header.revision))
                return
            BATCH_FAILED.inc()
        await asyncio.gather(*(one(*item) for item in batch))

    def _keys_of(self, rec: AllocationRecord) -> _RecordKeys:
        k, net = self.keys.k, rec.owner.network
        return _RecordKeys(
            subnet=k("subnets", net),
            owner=k("owners", rec.owner.key),
            ips=[k("ips", net, ip) for ip in rec.ips],
            cooling=[k("cooling", net, ip) for ip in rec.ips],
            mac=k("macs", rec.mac),
        )

    def _allocation_ops(
        self,
        rec: AllocationRecord,
        keys: _RecordKeys,
        subnet_revision: int,
        stale: dict[bytes, int],
    ) -> tuple[list[pb.Compare], list[pb.RequestOp]]:
        holder = rec.owner.key.encode()
        compare = [
            mod_is(keys.subnet, subnet_revision),
            absent(keys.owner),
            *(absent(key) for key in keys.ips),
            absent(keys.mac),
            *(mod_is(key, stale[key]) if key in stale else absent(key) for key in keys.cooling),
        ]
        success = [
            put(keys.owner, rec.to_json()),
            *(put(key, holder) for key in keys.ips),
            put(keys.mac, holder),
            *(delete(key) for key in keys.cooling),
        ]
        return compare, success

    async def _create_one(self, rec: AllocationRecord, subnet_revision: int) -> int:
        keys = self._keys_of(rec)
        # Cool-downs are checked here too, not only in the replica's view: a
        # cool-down record must be absent, or be one we have read and found
        # over (or left by this same owner), compared by its mod_revision.
        stale: dict[bytes, int] = {}
        for _ in range(_RETRIES):
            compare, success = self._allocation_ops(rec, keys, subnet_revision, stale)
            resp = await self.client.txn(
                compare,
                success,
                [
                    get(keys.subnet),
                    get(keys.owner),
                    *(get(key) for key in keys.ips),
                    get(keys.mac),
                    *(get(key) for key in keys.cooling),
                ],
            )
            if resp.succeeded:
                return int(resp.header.revision)
            got = [r.response_range.kvs for r in resp.responses]
            n = len(rec.ips)
            if got[1]:
                kv = got[1][0]
                raise OwnerExists(AllocationRecord.from_json(kv.value, kv.mod_revision))
            for ip, kvs in zip(rec.ips, got[2 : 2 + n], strict=True):
                if kvs:
                    raise AddressTaken(ip, kvs[0].value.decode())
            if got[2 + n]:
                raise MacTaken(rec.mac, got[2 + n][0].value.decode())
            if not got[0] or got[0][0].mod_revision != subnet_revision:
                raise SubnetChanged(f"subnet {rec.owner.network!r} changed")
            retry = False
            for key, kvs in zip(keys.cooling, got[3 + n :], strict=True):
                if not kvs:
                    stale.pop(key, None)
                    continue
                cooling = Cooling.from_json(kvs[0].value)
                if cooling.until_ms > rec.created_ms and cooling.previous_owner != rec.owner.key:
                    raise AddressCooling(cooling)
                if stale.get(key) != kvs[0].mod_revision:
                    stale[key] = kvs[0].mod_revision
                    retry = True
            if not retry:
                raise SubnetChanged(f"subnet {rec.owner.network!r}: lost a race, planning again")
        raise SubnetChanged(f"subnet {rec.owner.network!r}: too many concurrent changes")
