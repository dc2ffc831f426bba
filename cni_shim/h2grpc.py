"""A stdlib-only gRPC client for one unary call over a unix socket.

`import grpc` alone costs more than the shim's whole time budget, so the
shim speaks just enough HTTP/2 (prior knowledge, RFC 9113) to send one
request message and read one reply: a preface, SETTINGS, one HEADERS and one
DATA frame out; frames in until the stream ends. Header blocks are decoded
with `cni_shim.hpack` so `grpc-status` is known when a call fails.
"""

from __future__ import annotations

# The C module: `socket` builds its IntEnums at import (enum), a third of the
# shim's start-up; plain sockets need nothing from it.
import _socket
import struct
import time

from cni_shim.hpack import Decoder, HpackError

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_DATA, _HEADERS, _RST_STREAM, _SETTINGS, _PING, _GOAWAY, _WINDOW_UPDATE, _CONTINUATION = (
    0x0,
    0x1,
    0x3,
    0x4,
    0x6,
    0x7,
    0x8,
    0x9,
)
_END_STREAM, _ACK, _END_HEADERS, _PADDED, _PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20
_STREAM = 1
_WINDOW = 1 << 24  # what we let the server send before it must wait for us
_MAX_REPLY = 16 << 20


class TransportError(Exception):
    """The call did not complete: no connection, a broken stream or a timeout."""


class RpcError(Exception):
    """The server finished the call with a non-OK grpc-status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"grpc-status {status}: {message}")
        self.status = status
        self.message = message


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    head = struct.pack(">I", len(payload))[1:] + bytes((kind, flags))
    return head + struct.pack(">I", stream) + payload


def _literal(value: bytes) -> bytes:
    if len(value) < 127:
        return bytes((len(value),)) + value
    n = len(value) - 127
    out = bytearray((127,))
    while n >= 128:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out) + value


def _request_headers(path: str, timeout: float) -> bytes:
    # Literal fields without indexing, names from the static table where it
    # has them, no Huffman: any HPACK decoder accepts this.
    block = bytearray(b"\x83\x86")  # :method POST, :scheme http
    block += b"\x04" + _literal(path.encode())  # :path
    block += b"\x01" + _literal(b"localhost")  # :authority
    block += b"\x0f\x10" + _literal(b"application/grpc")  # content-type (index 31)
    block += b"\x00" + _literal(b"te") + _literal(b"trailers")
    millis = max(1, int(timeout * 1000))
    block += b"\x00" + _literal(b"grpc-timeout") + _literal(f"{millis}m".encode())
    return bytes(block)


class _Reader:
    def __init__(self, sock: _socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline
        self._buf = bytearray()

    def read(self, n: int) -> bytes:
        while len(self._buf) < n:
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise TransportError("timed out waiting for the reply")
            self._sock.settimeout(left)
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError as err:
                raise TransportError("timed out waiting for the reply") from err
            if not chunk:
                raise TransportError("connection closed before the call finished")
            self._buf += chunk
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out


def unary(socket_path: str, method: str, message: bytes, timeout: float) -> bytes:
    """Call `method` ("/pkg.Service/Method") with one serialized message.

    Returns the serialized reply. Raises TransportError or RpcError.
    """
    deadline = time.monotonic() + timeout
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        try:
            sock.connect(socket_path)
        except OSError as err:
            raise TransportError(f"cannot connect to {socket_path}: {err.strerror or err}") from err
        settings = struct.pack(">HI", 0x4, _WINDOW) + struct.pack(">HI", 0x2, 0)  # window, no push
        body = b"\x00" + struct.pack(">I", len(message)) + message
        sender = _Sender(sock, body)
        try:
            sock.sendall(
                _PREFACE
                + _frame(_SETTINGS, 0, 0, settings)
                + _frame(_WINDOW_UPDATE, 0, 0, struct.pack(">I", _WINDOW))
                + _frame(_HEADERS, _END_HEADERS, _STREAM, _request_headers(method, timeout))
            )
            sender.send()
            return _read_reply(sock, deadline, sender)
        except OSError as err:
            raise TransportError(f"connection to {socket_path} failed: {err}") from err
    finally:
        sock.close()


class _Sender:
    """The request body under HTTP/2 flow control: the server's windows start
    at 65535 bytes and grow only by its WINDOW_UPDATE and SETTINGS frames."""

    def __init__(self, sock: _socket.socket, body: bytes) -> None:
        self._sock = sock
        self._body = body
        self._sent = 0
        self.connection_window = 65535
        self.stream_window = 65535
        self._frame_size = 16384

    def send(self) -> None:
        out = bytearray()
        while self._sent < len(self._body):
            room = min(self.connection_window, self.stream_window, self._frame_size)
            if room <= 0:
                break
            chunk = self._body[self._sent : self._sent + room]
            self._sent += len(chunk)
            self.connection_window -= len(chunk)
            self.stream_window -= len(chunk)
            last = self._sent == len(self._body)
            out += _frame(_DATA, _END_STREAM if last else 0, _STREAM, chunk)
        if out:
            self._sock.sendall(out)

    def settings(self, payload: bytes) -> None:
        for pos in range(0, len(payload) - 5, 6):
            key, value = struct.unpack(">HI", payload[pos : pos + 6])
            if key == 0x4:  # SETTINGS_INITIAL_WINDOW_SIZE changes open streams' windows
                self.stream_window += value - 65535
            elif key == 0x5:
                self._frame_size = value


def _read_reply(sock: _socket.socket, deadline: float, sender: _Sender) -> bytes:
    reader = _Reader(sock, deadline)
    decoder = Decoder()
    headers: dict[str, str] = {}
    data = bytearray()
    block = bytearray()
    block_ends_stream = False
    while True:
        head = reader.read(9)
        length = int.from_bytes(head[:3], "big")
        kind, flags = head[3], head[4]
        stream = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
        if length > _MAX_REPLY:
            raise TransportError(f"frame of {length} bytes is too large")
        payload = reader.read(length)
        if kind == _SETTINGS and not flags & _ACK:
            sock.sendall(_frame(_SETTINGS, _ACK, 0, b""))
            sender.settings(payload)
            sender.send()
        elif kind == _WINDOW_UPDATE and len(payload) == 4:
            increment = int.from_bytes(payload, "big") & 0x7FFFFFFF
            if stream == 0:
                sender.connection_window += increment
            elif stream == _STREAM:
                sender.stream_window += increment
            sender.send()
        elif kind == _PING and not flags & _ACK:
            sock.sendall(_frame(_PING, _ACK, 0, payload))
        elif kind == _GOAWAY:
            code = int.from_bytes(payload[4:8], "big") if len(payload) >= 8 else -1
            last = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF if len(payload) >= 4 else 0
            if last < _STREAM or code != 0:
                raise TransportError(f"server sent GOAWAY (error {code})")
        elif stream != _STREAM:
            continue
        elif kind == _RST_STREAM:
            code = int.from_bytes(payload[:4], "big") if len(payload) >= 4 else -1
            raise TransportError(f"server reset the stream (error {code})")
        elif kind == _DATA:
            data += _unpad(payload, flags)
            if len(data) > _MAX_REPLY:
                raise TransportError("reply too large")
            if flags & _END_STREAM:
                return _finish(headers, data)
        elif kind in (_HEADERS, _CONTINUATION):
            if kind == _HEADERS:
                fragment = _unpad(payload, flags)
                if flags & _PRIORITY:
                    fragment = fragment[5:]
                block = bytearray(fragment)
                block_ends_stream = bool(flags & _END_STREAM)
            else:
                block += payload
            if flags & _END_HEADERS:
                try:
                    headers.update(decoder.decode(bytes(block)))
                except HpackError as err:
                    raise TransportError(f"undecodable reply headers: {err}") from err
                if block_ends_stream:
                    return _finish(headers, data)


def _unpad(payload: bytes, flags: int) -> bytes:
    if not flags & _PADDED:
        return payload
    if not payload or payload[0] >= len(payload):
        raise TransportError("bad frame padding")
    return payload[1 : len(payload) - payload[0]]


def _finish(headers: dict[str, str], data: bytearray) -> bytes:
    status_text = headers.get("grpc-status")
    if status_text is None:
        raise TransportError(f"no grpc-status (HTTP status {headers.get(':status', '?')})")
    status = int(status_text) if status_text.isdigit() else 2
    if status != 0:
        raise RpcError(status, _percent_decode(headers.get("grpc-message", "")))
    if len(data) < 5:
        raise TransportError("reply without a message")
    if data[0] != 0:
        raise TransportError("compressed reply messages are not supported")
    size = int.from_bytes(data[1:5], "big")
    if size != len(data) - 5:
        raise TransportError(f"reply message of {len(data) - 5} bytes, header says {size}")
    return bytes(data[5:])


def _percent_decode(text: str) -> str:
    if "%" not in text:
        return text
    out = bytearray()
    i = 0
    raw = text.encode()
    while i < len(raw):
        if raw[i] == 0x25 and i + 2 < len(raw):
            try:
                out.append(int(raw[i + 1 : i + 3], 16))
                i += 3
                continue
            except ValueError:
                pass
        out.append(raw[i])
        i += 1
    return out.decode("utf-8", "replace")
