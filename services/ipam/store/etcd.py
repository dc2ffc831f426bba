"""etcd store: many ipam replicas share one etcd (v3 API over gRPC).

Why gRPC and not etcd's JSON gateway: one HTTP/2 channel multiplexes every
concurrent transaction and the watch without JSON and base64 work on either
side (bench/ipam.py measures the two; see the report there).

Layout under the prefix P (default /kovn/ipam):
    P/subnets/<name>              SubnetSpec JSON (its mod_revision is the
                                  subnet's revision)
    P/pools/<subnet>/<name>       PoolSpec JSON
    P/owners/<net>/<ns>/<pod>/<nic>  AllocationRecord JSON
    P/ips/<subnet>/<ip>           owner key
    P/macs/<mac>                  owner key
    P/cooling/<subnet>/<ip>       Cooling JSON
    P/meta/subnets                touched by every subnet/pool change

Every allocation is created in ONE transaction comparing the owner, address
and MAC keys' create_revision with 0, the addresses' cool-down keys with
absent (or with the version found expired), and the subnet's mod_revision
with the one the allocator planned with; two replicas can therefore never
both win one address, a replica with a stale view cannot take a cooling
address, and nobody allocates against a subnet definition that changed.

Allocations that arrive while a transaction is in flight go together into
the next one (group commit, within etcd's 128 compares): one raft entry and
one watch message per replica for many allocations. A grouped transaction
that fails is retried one allocation at a time, whose failure branch reads
the keys back, so each refusal names its holder precisely.

Subnet and pool changes read the subnet's allocations, check them, and
write only if no allocation key of the subnet changed since that read (a
range compare on mod_revision).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import grpc
from prometheus_client import Counter, Histogram

from services.common.errors import AlreadyExists, Conflict, NotFound, Unavailable
from services.common.logging import get_logger
from services.ipam.model import AllocationRecord, Cooling, PoolSpec, Snapshot, SubnetSpec
from services.ipam.store.base import (
    AddressCooling,
    AddressTaken,
    AllocationCheck,
    Changes,
    MacTaken,
    OwnerExists,
    Store,
    SubnetChanged,
)
from services.ipam.store.etcdpb import etcd_subset_pb2 as pb

log = get_logger(__name__)

BATCH = Histogram(
    "kovn_ipam_etcd_txn_allocations",
    "Allocations carried by one etcd transaction (group commit).",
    buckets=(1, 2, 4, 8, 16, 32),
)
BATCH_FAILED = Counter(
    "kovn_ipam_etcd_batch_failures_total",
    "Grouped transactions refused as a whole and retried one allocation at a time.",
)

_CMP = pb.Compare
_RETRIES = 8
# etcd refuses transactions with more than --max-txn-ops (default 128)
# compares or operations.
_TXN_OPS = 128
# Transactions in flight at once from one replica: one is being answered
# while the next fills up.
_FLUSHERS = 2


def prefix_end(key: bytes) -> bytes:
    """The range_end that selects every key starting with `key`."""
    end = bytearray(key)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"


def _put(key: bytes, value: str | bytes) -> pb.RequestOp:
    data = value.encode() if isinstance(value, str) else value
    return pb.RequestOp(request_put=pb.PutRequest(key=key, value=data))


def _delete(key: bytes, prefix: bool = False) -> pb.RequestOp:
    return pb.RequestOp(
        request_delete_range=pb.DeleteRangeRequest(
            key=key, range_end=prefix_end(key) if prefix else b""
        )
    )


def _get(key: bytes) -> pb.RequestOp:
    return pb.RequestOp(request_range=pb.RangeRequest(key=key))


def _absent(key: bytes) -> pb.Compare:
    return pb.Compare(key=key, target=_CMP.CREATE, result=_CMP.EQUAL, create_revision=0)


def _mod_is(key: bytes, revision: int) -> pb.Compare:
    return pb.Compare(key=key, target=_CMP.MOD, result=_CMP.EQUAL, mod_revision=revision)


def _unchanged_since(prefix: bytes, revision: int) -> pb.Compare:
    """No key under `prefix` was created or modified after `revision`."""
    return pb.Compare(
        key=prefix,
        range_end=prefix_end(prefix),
        target=_CMP.MOD,
        result=_CMP.LESS,
        mod_revision=revision + 1,
    )


class EtcdStore(Store):
    kind = "etcd"

    def __init__(self, endpoints: Sequence[str], *, prefix: str = "/kovn/ipam") -> None:
        self.endpoints = [e.removeprefix("http://") for e in endpoints]
        self.prefix = prefix.encode()
        self._endpoint = 0
        self._channel: grpc.aio.Channel | None = None
        self._calls: dict[str, Any] = {}
        self._channels: dict[int, grpc.aio.Channel] = {}
        self._endpoint_calls: dict[int, dict[str, Any]] = {}
        self._watch_task: asyncio.Task[None] | None = None
        self._queue: deque[tuple[AllocationRecord, int, asyncio.Future[int]]] = deque()
        self._flushers = 0
        self._revision = 0  # store revision the loaded snapshot reflects
        self._meta_rev = 0  # mod_revision of P/meta/subnets we last saw
        # Told whether etcd answers, from the watch stream's health (the
        # service turns it into its grpc.health status).
        self.on_availability: Callable[[bool], None] = lambda ok: None

    # ---- keys ----------------------------------------------------------------

    def k(self, *parts: str) -> bytes:
        return self.prefix + b"/" + "/".join(parts).encode()

    # ---- connection ----------------------------------------------------------

    def _connect(self) -> None:
        """Use the current endpoint's channel (one per endpoint, kept open)."""
        index = self._endpoint % len(self.endpoints)
        if index not in self._channels:
            ch = grpc.aio.insecure_channel(
                self.endpoints[index],
                options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)],
            )

            def unary(method: str, req: Any, resp: Any) -> Any:
                return ch.unary_unary(
                    f"/etcdserverpb.KV/{method}",
                    request_serializer=req.SerializeToString,
                    response_deserializer=resp.FromString,
                )

            self._channels[index] = ch
            self._endpoint_calls[index] = {
                "Range": unary("Range", pb.RangeRequest, pb.RangeResponse),
                "Txn": unary("Txn", pb.TxnRequest, pb.TxnResponse),
            }
        self._channel = self._channels[index]
        self._calls = self._endpoint_calls[index]

    async def open(self) -> None:
        self._connect()
        # Fail at start, not on the first allocation, if etcd is unreachable.
        await self._range(self.k("meta", "subnets"))

    async def close(self) -> None:
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task
            self._watch_task = None
        for ch in self._channels.values():
            await ch.close(None)
        self._channels.clear()
        self._endpoint_calls.clear()
        self._channel = None

    async def _call(self, method: str, request: Any) -> Any:
        # Each endpoint once. A transaction that timed out may still have been
        # applied; trying it again is safe: an allocation then finds its owner
        # record (OwnerExists: the same answer), a release finds it gone.
        for attempt in range(len(self.endpoints)):
            try:
                return await self._calls[method](request, timeout=10.0)
            except grpc.aio.AioRpcError as err:
                if err.code() not in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                ):
                    raise Unavailable(f"etcd {method}: {err.code().name} {err.details()}") from None
                if attempt == len(self.endpoints) - 1:
                    raise Unavailable(
                        f"etcd unreachable ({', '.join(self.endpoints)}): {err.details()}",
                        retry_after=1.0,
                    ) from None
                self._endpoint += 1
                self._connect()
        raise AssertionError("unreachable")

    async def _range(self, key: bytes, prefix: bool = False) -> pb.RangeResponse:
        req = pb.RangeRequest(key=key, range_end=prefix_end(key) if prefix else b"")
        resp: pb.RangeResponse = await self._call("Range", req)
        return resp

    async def _txn(
        self,
        compare: Sequence[pb.Compare],
        success: Sequence[pb.RequestOp],
        failure: Sequence[pb.RequestOp] = (),
    ) -> pb.TxnResponse:
        resp: pb.TxnResponse = await self._call(
            "Txn", pb.TxnRequest(compare=compare, success=success, failure=failure)
        )
        return resp

    # ---- reads ---------------------------------------------------------------

    async def load(self) -> Snapshot:
        # One read-only transaction: a consistent snapshot in one round trip,
        # without the address and MAC index keys (the records carry those).
        parts = [self.k(part, "") for part in ("subnets", "pools", "owners", "cooling")]
        ranges = [
            pb.RequestOp(request_range=pb.RangeRequest(key=key, range_end=prefix_end(key)))
            for key in parts
        ]
        resp = await self._txn([], [*ranges, _get(self.k("meta", "subnets"))])
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
        resp = await self._range(self.k("owners", owner_key))
        for kv in resp.kvs:
            return AllocationRecord.from_json(kv.value, kv.mod_revision)
        return None

    async def _subnet_allocations(self, subnet: str) -> tuple[list[AllocationRecord], int]:
        resp = await self._range(self.k("owners", subnet, ""), prefix=True)
        records = [AllocationRecord.from_json(kv.value, kv.mod_revision) for kv in resp.kvs]
        return records, resp.header.revision

    async def list_allocations(self, subnet: str = "") -> list[AllocationRecord]:
        key = self.k("owners", subnet, "") if subnet else self.k("owners", "")
        resp = await self._range(key, prefix=True)
        return [AllocationRecord.from_json(kv.value, kv.mod_revision) for kv in resp.kvs]

    # ---- watch ---------------------------------------------------------------

    async def watch(self, changes: Changes) -> None:
        self._watch_task = asyncio.get_running_loop().create_task(self._watch(changes))

    async def _watch(self, changes: Changes) -> None:
        # Three watchers on one stream: allocations, cool-downs and the key
        # every subnet/pool change touches. Address and MAC keys are not
        # watched: their changes ride in the same transactions as the owner
        # records, which carry the addresses.
        start = self._revision + 1
        while True:
            seen: dict[int, int] = {}  # watch id -> last revision handled
            try:
                async for resp in self._watch_stream(start):
                    if resp.canceled:
                        # Compacted past our revision: re-read subnets and
                        # what they hold, then follow from now on.
                        log.warning("etcd watch cancelled", reason=resp.cancel_reason)
                        changes.subnets_changed()
                        seen.clear()
                        start = 0
                        break
                    if resp.created and not seen:
                        self.on_availability(True)
                    seen.setdefault(resp.watch_id, start - 1)
                    for event in resp.events:
                        self._dispatch(event, changes)
                    if resp.events:
                        seen[resp.watch_id] = resp.events[-1].kv.mod_revision
            except asyncio.CancelledError:
                raise
            except Exception as err:  # etcd restarted or unreachable: try again
                log.warning("etcd watch failed; retrying", error=str(err))
                self.on_availability(False)
                await asyncio.sleep(1.0)  # back-off before reconnecting; no event to await
            if seen:
                # Resume where the slowest watcher was; replays are harmless.
                start = min(seen.values()) + 1

    async def _watch_stream(self, start: int) -> AsyncIterator[pb.WatchResponse]:
        assert self._channel is not None
        call = self._channel.stream_stream(
            "/etcdserverpb.Watch/Watch",
            request_serializer=pb.WatchRequest.SerializeToString,
            response_deserializer=pb.WatchResponse.FromString,
        )
        owners, cooling = self.k("owners", ""), self.k("cooling", "")
        creates = [
            pb.WatchCreateRequest(key=owners, range_end=prefix_end(owners), start_revision=start),
            pb.WatchCreateRequest(key=cooling, range_end=prefix_end(cooling), start_revision=start),
            pb.WatchCreateRequest(key=self.k("meta", "subnets"), start_revision=start),
        ]

        async def requests() -> AsyncIterator[pb.WatchRequest]:
            for create in creates:
                yield pb.WatchRequest(create_request=create)
            await asyncio.Event().wait()  # keep the stream open

        stream = call(requests())
        async for resp in stream:
            yield resp

    def _dispatch(self, event: pb.Event, changes: Changes) -> None:
        key = event.kv.key
        rel = key[len(self.prefix) + 1 :].decode()
        kind, _, rest = rel.partition("/")
        deleted = event.type == pb.Event.DELETE
        if kind == "owners":
            if deleted:
                changes.allocation_deleted(rest)
            elif not changes.knows(rest, event.kv.mod_revision):  # our own write, echoed
                changes.allocation_put(
                    AllocationRecord.from_json(event.kv.value, event.kv.mod_revision)
                )
        elif kind == "cooling" and not deleted:
            changes.cooling_put(Cooling.from_json(event.kv.value))
        elif kind == "meta" and event.kv.mod_revision > self._meta_rev:
            self._meta_rev = event.kv.mod_revision
            changes.subnets_changed()

    # ---- subnets and pools ---------------------------------------------------

    def _meta_ops(self) -> tuple[pb.Compare, pb.RequestOp]:
        """Subnet/pool changes are serialised on one key: compare and touch it."""
        meta = self.k("meta", "subnets")
        return _mod_is(meta, self._meta_rev), _put(meta, b"")

    def _stale(self) -> Conflict:
        # The caller re-reads subnets (load() also moves _meta_rev, from the
        # same snapshot) before trying again, so checks like overlap run on
        # what another replica just wrote.
        return Conflict("subnets were changed by another replica at the same time; retry")

    async def create_subnet(self, spec: SubnetSpec) -> int:
        key = self.k("subnets", spec.name)
        meta_cmp, meta_put = self._meta_ops()
        resp = await self._txn(
            [_absent(key), meta_cmp],
            [_put(key, spec.to_json()), meta_put],
            [_get(key)],
        )
        if not resp.succeeded:
            if resp.responses[0].response_range.kvs:
                raise AlreadyExists(f"subnet {spec.name!r} exists", field="subnet.name")
            raise self._stale()
        self._meta_rev = resp.header.revision
        return resp.header.revision

    async def _subnet_revision(self, name: str, field: str) -> int:
        resp = await self._range(self.k("subnets", name))
        if not resp.kvs:
            raise NotFound(f"no subnet {name!r}", field=field)
        return int(resp.kvs[0].mod_revision)

    async def _checked_write(
        self,
        subnet: str,
        field: str,
        check: AllocationCheck,
        ops: Sequence[pb.RequestOp],
        extra: Sequence[pb.Compare] = (),
        pool: str = "",
    ) -> int:
        """Write `ops` if `check` accepts the subnet's allocations, atomically."""
        for _ in range(_RETRIES):
            revision = await self._subnet_revision(subnet, field)
            records, read_at = await self._subnet_allocations(subnet)
            check([r for r in records if r.pool == pool] if pool else records)
            meta_cmp, meta_put = self._meta_ops()
            compare = [
                _mod_is(self.k("subnets", subnet), revision),
                _unchanged_since(self.k("owners", subnet, ""), read_at),
                meta_cmp,
                *extra,
            ]
            resp = await self._txn(compare, [*ops, meta_put])
            if resp.succeeded:
                self._meta_rev = resp.header.revision
                return resp.header.revision
            # Lost against an allocation or another change: read again.
            await self.load()
        raise self._stale()

    async def update_subnet(self, spec: SubnetSpec, check: AllocationCheck) -> int:
        key = self.k("subnets", spec.name)
        return await self._checked_write(
            spec.name, "subnet.name", check, [_put(key, spec.to_json())]
        )

    async def delete_subnet(self, name: str, check: AllocationCheck) -> None:
        ops = [
            _delete(self.k("subnets", name)),
            _delete(self.k("pools", name, ""), prefix=True),
            _delete(self.k("cooling", name, ""), prefix=True),
            _delete(self.k("ips", name, ""), prefix=True),
        ]
        await self._checked_write(name, "name", check, ops)

    async def create_pool(self, pool: PoolSpec) -> int:
        sub = await self._range(self.k("subnets", pool.subnet))
        if not sub.kvs:
            raise NotFound(f"no subnet {pool.subnet!r}", field="pool.subnet")
        key = self.k("pools", pool.subnet, pool.name)
        meta_cmp, meta_put = self._meta_ops()
        # Re-writing the subnet bumps its revision: allocations planned
        # without the pool fail their compare and are planned again.
        subnet_key, subnet = self.k("subnets", pool.subnet), sub.kvs[0]
        resp = await self._txn(
            [_absent(key), meta_cmp, _mod_is(subnet_key, subnet.mod_revision)],
            [_put(key, pool.to_json()), _put(subnet_key, subnet.value), meta_put],
            [_get(key)],
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
        if not (await self._range(key)).kvs:
            raise NotFound(f"no pool {name!r} in subnet {subnet!r}", field="name")
        sub = await self._range(self.k("subnets", subnet))
        ops = [_delete(key), _put(self.k("subnets", subnet), sub.kvs[0].value if sub.kvs else b"")]
        return await self._checked_write(subnet, "subnet", check, ops, pool=name)

    # ---- allocations ---------------------------------------------------------

    async def create_allocation(self, rec: AllocationRecord, subnet_revision: int) -> int:
        # Group commit: allocations that arrive while transactions are in
        # flight go together in the next one. One etcd transaction (one raft
        # entry, one watch message per replica) then carries many
        # allocations; if it fails, its allocations are retried one by one
        # so each gets its own precise answer.
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.append((rec, subnet_revision, fut))
        if self._flushers < _FLUSHERS:
            self._flushers += 1
            asyncio.get_running_loop().create_task(self._flush())
        return await fut

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch: list[tuple[AllocationRecord, int, asyncio.Future[int]]] = []
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

    async def _commit_batch(
        self, batch: list[tuple[AllocationRecord, int, asyncio.Future[int]]]
    ) -> None:
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
                c, s = self._allocation_ops(rec, revision, {})
                compare += c
                success += s
            try:
                resp = await self._txn(compare, success)
            except Unavailable as err:
                if err.retry_after is not None:  # etcd unreachable: every caller hears it
                    for _, _, fut in batch:
                        if not fut.done():
                            fut.set_exception(err)
                    return
                resp = None  # refused as a request (a limit): one by one below
            if resp is not None and resp.succeeded:
                for _, _, fut in batch:
                    if not fut.done():
                        fut.set_result(int(resp.header.revision))
                return
            BATCH_FAILED.inc()
        await asyncio.gather(*(one(*item) for item in batch))

    def _allocation_ops(
        self, rec: AllocationRecord, subnet_revision: int, stale: dict[bytes, int]
    ) -> tuple[list[pb.Compare], list[pb.RequestOp]]:
        net = rec.owner.network
        owner_key = self.k("owners", rec.owner.key)
        ip_keys = [self.k("ips", net, ip) for ip in rec.ips]
        cool_keys = [self.k("cooling", net, ip) for ip in rec.ips]
        mac_key = self.k("macs", rec.mac)
        holder = rec.owner.key.encode()
        compare = [
            _mod_is(self.k("subnets", net), subnet_revision),
            _absent(owner_key),
            *(_absent(k) for k in ip_keys),
            _absent(mac_key),
            *(_mod_is(k, stale[k]) if k in stale else _absent(k) for k in cool_keys),
        ]
        success = [
            _put(owner_key, rec.to_json()),
            *(_put(k, holder) for k in ip_keys),
            _put(mac_key, holder),
            *(_delete(k) for k in cool_keys),
        ]
        return compare, success

    async def _create_one(self, rec: AllocationRecord, subnet_revision: int) -> int:
        net = rec.owner.network
        owner_key = self.k("owners", rec.owner.key)
        ip_keys = [self.k("ips", net, ip) for ip in rec.ips]
        cool_keys = [self.k("cooling", net, ip) for ip in rec.ips]
        mac_key = self.k("macs", rec.mac)
        subnet_key = self.k("subnets", net)
        # Cool-downs are checked here too, not only in the replica's view: a
        # cool-down record must be absent, or be one we have read and found
        # over (or left by this same owner), compared by its mod_revision.
        stale: dict[bytes, int] = {}
        for _ in range(_RETRIES):
            compare, success = self._allocation_ops(rec, subnet_revision, stale)
            resp = await self._txn(
                compare,
                success,
                [
                    _get(subnet_key),
                    _get(owner_key),
                    *(_get(k) for k in ip_keys),
                    _get(mac_key),
                    *(_get(k) for k in cool_keys),
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
                raise SubnetChanged(f"subnet {net!r} changed")
            retry = False
            for key, kvs in zip(cool_keys, got[3 + n :], strict=True):
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
                raise SubnetChanged(f"subnet {net!r}: lost a race, planning again")
        raise SubnetChanged(f"subnet {net!r}: too many concurrent changes")

    async def release(self, rec: AllocationRecord, cooling: Sequence[Cooling]) -> bool:
        net = rec.owner.network
        owner_key = self.k("owners", rec.owner.key)
        resp = await self._txn(
            [_mod_is(owner_key, rec.revision)],
            [
                _delete(owner_key),
                *(_delete(self.k("ips", net, ip)) for ip in rec.ips),
                _delete(self.k("macs", rec.mac)),
                *(_put(self.k("cooling", c.subnet, c.ip), c.to_json()) for c in cooling),
            ],
        )
        return bool(resp.succeeded)
