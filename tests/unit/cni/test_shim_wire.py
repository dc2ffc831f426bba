"""The shim's hand-written protobuf, HPACK and HTTP/2 client against the real
thing: generated protobuf classes and a real grpc server."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cni_shim import h2grpc, hpack, wire
from services.api.dataplane.v1 import dataplane_pb2, dataplane_pb2_grpc

_text = st.text(max_size=200)
_key = st.text(min_size=1, max_size=50)


@given(
    st.dictionaries(st.text(min_size=1, max_size=50), _text, max_size=8), st.binary(max_size=3000)
)
def test_request_encoding_matches_generated_code(env: dict[str, str], stdin: bytes) -> None:
    ours = wire.encode_cni_request(env, stdin)
    for key, value in env.items():
        # Byte for byte per entry (map entry order is not part of the format).
        one = dataplane_pb2.CniRequest(env={key: value}, stdin=stdin).SerializeToString()
        assert wire.encode_cni_request({key: value}, stdin) == one
    back = dataplane_pb2.CniRequest.FromString(ours)
    assert dict(back.env) == env and back.stdin == stdin


@given(st.binary(max_size=5000), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_reply_decoding_matches_generated_code(out: bytes, exit_code: int, code: int) -> None:
    raw = dataplane_pb2.CniReply(stdout=out, exit_code=exit_code, error_code=code)
    assert wire.decode_cni_reply(raw.SerializeToString()) == wire.CniReply(out, exit_code, code)


def test_reply_decoding_rejects_truncation() -> None:
    raw = dataplane_pb2.CniReply(stdout=b"x" * 50, exit_code=1).SerializeToString()
    with pytest.raises(wire.DecodeError):
        wire.decode_cni_reply(raw[:10])


def test_huffman_rfc7541_examples() -> None:
    # RFC 7541 C.4.1 and C.4.2
    assert hpack.huffman_decode(bytes.fromhex("f1e3c2e5f23a6ba0ab90f4ff")) == b"www.example.com"
    assert hpack.huffman_decode(bytes.fromhex("a8eb10649cbf")) == b"no-cache"
    with pytest.raises(hpack.HpackError):
        hpack.huffman_decode(b"\x00")  # padding must be ones


def test_hpack_dynamic_table_rfc7541_c3() -> None:
    d = hpack.Decoder()
    first = d.decode(bytes.fromhex("828684410f7777772e6578616d706c652e636f6d"))
    assert first == [(":method", "GET"), (":scheme", "http"), (":path", "/"),
                     (":authority", "www.example.com")]  # fmt: skip
    second = d.decode(bytes.fromhex("828684be58086e6f2d6361636865"))
    assert second[-2:] == [(":authority", "www.example.com"), ("cache-control", "no-cache")]


class _Servicer(dataplane_pb2_grpc.DataplaneServicer):
    async def Cni(self, request: Any, context: Any) -> dataplane_pb2.CniReply:
        command = request.env.get("CNI_COMMAND", "")
        if command == "FAIL":
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "nope: ünïcode % sign")
        if command == "SLOW":
            await asyncio.sleep(5)
        size = int(request.env.get("SIZE", "0"))
        return dataplane_pb2.CniReply(stdout=request.stdin + b"!" * size, exit_code=7)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "s.sock")
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop: asyncio.Event | None = None

    async def serve() -> None:
        nonlocal stop
        stop = asyncio.Event()
        srv = grpc.aio.server()
        dataplane_pb2_grpc.add_DataplaneServicer_to_server(_Servicer(), srv)  # type: ignore[no-untyped-call]
        srv.add_insecure_port(f"unix:{path}")
        await srv.start()
        started.set()
        await stop.wait()
        await srv.stop(0)

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),))
    thread.start()
    started.wait(10)
    yield path
    assert stop is not None
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)
    loop.close()


METHOD = "/kovn.dataplane.v1.Dataplane/Cni"


def test_unary_call_against_real_grpc_server(server: str) -> None:
    for _ in range(3):  # repeated calls: fresh HPACK state per connection
        raw = h2grpc.unary(server, METHOD, wire.encode_cni_request({"A": "b"}, b"hello"), 5)
        assert wire.decode_cni_reply(raw) == wire.CniReply(b"hello", 7, 0)


def test_large_reply_spans_frames(server: str) -> None:
    raw = h2grpc.unary(server, METHOD, wire.encode_cni_request({"SIZE": "300000"}, b"x" * 70000), 5)
    reply = wire.decode_cni_reply(raw)
    assert len(reply.stdout) == 370000


def test_error_status_read_from_trailers(server: str) -> None:
    with pytest.raises(h2grpc.RpcError) as info:
        h2grpc.unary(server, METHOD, wire.encode_cni_request({"CNI_COMMAND": "FAIL"}, b""), 5)
    assert info.value.status == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert info.value.message == "nope: ünïcode % sign"


def test_unknown_method_and_timeout_and_no_server(server: str, tmp_path: Path) -> None:
    with pytest.raises(h2grpc.RpcError) as info:
        h2grpc.unary(server, "/kovn.dataplane.v1.Dataplane/Nope", b"", 5)
    assert info.value.status == grpc.StatusCode.UNIMPLEMENTED.value[0]
    with pytest.raises((h2grpc.TransportError, h2grpc.RpcError)):
        h2grpc.unary(server, METHOD, wire.encode_cni_request({"CNI_COMMAND": "SLOW"}, b""), 0.3)
    with pytest.raises(h2grpc.TransportError, match="cannot connect"):
        h2grpc.unary(str(tmp_path / "none.sock"), METHOD, b"", 1)
