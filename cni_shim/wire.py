"""Hand-written protobuf encoding of the two messages the shim exchanges.

Mirrors kovn.dataplane.v1 CniRequest and CniReply (protos/kovn/dataplane/v1)
so the shim needs no protobuf runtime; tests check it byte for byte against
the generated classes.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # collections costs start-up time; annotations are strings
    TYPE_CHECKING = False
if TYPE_CHECKING:  # collections costs start-up time; annotations are strings
    from collections.abc import Mapping


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint((number << 3) | 2) + _varint(len(payload)) + payload


def encode_cni_request(env: Mapping[str, str], stdin: bytes) -> bytes:
    """CniRequest{env: map<string,string> = 1, stdin: bytes = 2}."""
    out = bytearray()
    for key in sorted(env):
        entry = _field(1, key.encode()) + _field(2, env[key].encode())
        out += _field(1, entry)
    if stdin:
        out += _field(2, stdin)
    return bytes(out)


class CniReply:
    """The decoded reply (a plain class: dataclasses cost the shim start-up time)."""

    __slots__ = ("error_code", "exit_code", "stdout")

    def __init__(self, stdout: bytes = b"", exit_code: int = 0, error_code: int = 0) -> None:
        self.stdout = stdout
        self.exit_code = exit_code
        self.error_code = error_code

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CniReply):
            return NotImplemented
        return (self.stdout, self.exit_code, self.error_code) == (
            other.stdout,
            other.exit_code,
            other.error_code,
        )

    def __hash__(self) -> int:
        return hash((self.stdout, self.exit_code, self.error_code))

    def __repr__(self) -> str:
        return f"CniReply({self.stdout!r}, {self.exit_code}, {self.error_code})"


class DecodeError(ValueError):
    """The reply bytes are not a CniReply."""


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise DecodeError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def decode_cni_reply(data: bytes) -> CniReply:
    """CniReply{stdout: bytes = 1, exit_code: uint32 = 2, error_code: uint32 = 3}."""
    stdout = b""
    exit_code = 0
    error_code = 0
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, kind = key >> 3, key & 7
        if kind == 0:
            value, pos = _read_varint(data, pos)
            if number == 2:
                exit_code = value & 0xFFFFFFFF
            elif number == 3:
                error_code = value & 0xFFFFFFFF
        elif kind == 2:
            size, pos = _read_varint(data, pos)
            if pos + size > len(data):
                raise DecodeError("truncated field")
            if number == 1:
                stdout = data[pos : pos + size]
            pos += size
        elif kind == 1:
            pos += 8
        elif kind == 5:
            pos += 4
        else:
            raise DecodeError(f"unsupported wire type {kind}")
    if pos != len(data):
        raise DecodeError("truncated field")
    return CniReply(stdout, exit_code, error_code)
