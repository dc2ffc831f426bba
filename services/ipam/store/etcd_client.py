"""Talking to etcd: one channel per endpoint, failover, and transaction pieces.

Why gRPC and not etcd's JSON gateway: one HTTP/2 channel multiplexes every
concurrent transaction and the watch without JSON and base64 work on either
side (bench/ipam.py measures the two; see the report there). Only the few
etcd v3 calls the store needs are wrapped (Range, Txn, Watch, from the
subset in etcdpb/), and every failure to reach etcd becomes Unavailable so
that no grpc error leaks out of the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc

from services.common.errors import Unavailable
from services.ipam.store.etcdpb import etcd_subset_pb2 as pb

_CMP = pb.Compare
_TIMEOUT = 10.0


class EtcdUnreachable(Unavailable):
    """No endpoint answered: every caller waiting on etcd hears the same."""


def prefix_end(key: bytes) -> bytes:
    """The range_end that selects every key starting with `key`."""
    end = bytearray(key)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"


def put(key: bytes, value: str | bytes) -> pb.RequestOp:
    data = value.encode() if isinstance(value, str) else value
    return pb.RequestOp(request_put=pb.PutRequest(key=key, value=data))


def delete(key: bytes, prefix: bool = False) -> pb.RequestOp:
    return pb.RequestOp(
        request_delete_range=pb.DeleteRangeRequest(
            key=key, range_end=prefix_end(key) if prefix else b""
        )
    )


def get(key: bytes, prefix: bool = False) -> pb.RequestOp:
    return pb.RequestOp(
        request_range=pb.RangeRequest(key=key, range_end=prefix_end(key) if prefix else b"")
    )


def absent(key: bytes) -> pb.Compare:
    return pb.Compare(key=key, target=_CMP.CREATE, result=_CMP.EQUAL, create_revision=0)


def mod_is(key: bytes, revision: int) -> pb.Compare:
    return pb.Compare(key=key, target=_CMP.MOD, result=_CMP.EQUAL, mod_revision=revision)


def unchanged_since(prefix: bytes, revision: int) -> pb.Compare:
    """No key under `prefix` was created or modified after `revision`."""
    return pb.Compare(
        key=prefix,
        range_end=prefix_end(prefix),
        target=_CMP.MOD,
        result=_CMP.LESS,
        mod_revision=revision + 1,
    )


class EtcdClient:
    def __init__(self, endpoints: Sequence[str]) -> None:
        self.endpoints = [e.removeprefix("http://") for e in endpoints]
        self._endpoint = 0
        self._channel: grpc.aio.Channel | None = None
        self._calls: dict[str, Any] = {}
        self._channels: dict[int, grpc.aio.Channel] = {}
        self._endpoint_calls: dict[int, dict[str, Any]] = {}

    def connect(self) -> None:
        """Use the current endpoint's channel (one per endpoint, kept open)."""
        if not self.endpoints:
            raise Unavailable("no etcd endpoint configured")
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

    async def close(self) -> None:
        for ch in self._channels.values():
            await ch.close(None)
        self._channels.clear()
        self._endpoint_calls.clear()
        self._channel = None
        self._calls = {}

    async def _call(self, method: str, request: Any) -> Any:
        # Each endpoint once. A transaction that timed out may still have been
        # applied; trying it again is safe: an allocation then finds its owner
        # record (OwnerExists: the same answer), a release finds it gone.
        for attempt in range(len(self.endpoints)):
            call = self._calls.get(method)
            if call is None:
                raise Unavailable("etcd store is not open (or closed)")
            try:
                return await call(request, timeout=_TIMEOUT)
            except grpc.aio.AioRpcError as err:
                if err.code() not in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                ):
                    raise Unavailable(f"etcd {method}: {err.code().name} {err.details()}") from None
                if attempt == len(self.endpoints) - 1:
                    raise EtcdUnreachable(
                        f"etcd unreachable ({', '.join(self.endpoints)}): {err.details()}",
                        retry_after=1.0,
                    ) from None
                self._endpoint += 1
                self.connect()
        raise Unavailable("no etcd endpoint configured")  # endpoints is empty

    async def range(self, key: bytes, prefix: bool = False) -> pb.RangeResponse:
        req = pb.RangeRequest(key=key, range_end=prefix_end(key) if prefix else b"")
        resp: pb.RangeResponse = await self._call("Range", req)
        return resp

    async def txn(
        self,
        compare: Sequence[pb.Compare],
        success: Sequence[pb.RequestOp],
        failure: Sequence[pb.RequestOp] = (),
    ) -> pb.TxnResponse:
        resp: pb.TxnResponse = await self._call(
            "Txn", pb.TxnRequest(compare=compare, success=success, failure=failure)
        )
        return resp

    async def watch(
        self, creates: Sequence[pb.WatchCreateRequest]
    ) -> AsyncIterator[pb.WatchResponse]:
        """One Watch stream carrying `creates`; ends (or raises) when the stream does."""
        if self._channel is None:
            raise Unavailable("etcd store is not open (or closed)")
        call = self._channel.stream_stream(
            "/etcdserverpb.Watch/Watch",
            request_serializer=pb.WatchRequest.SerializeToString,
            response_deserializer=pb.WatchResponse.FromString,
        )

        async def requests() -> AsyncIterator[pb.WatchRequest]:
            for create in creates:
                yield pb.WatchRequest(create_request=create)
            await asyncio.Event().wait()  # keep the stream open

        async for resp in call(requests()):
            yield resp
