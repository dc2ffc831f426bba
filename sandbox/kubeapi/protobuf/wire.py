"""The protobuf wire format, read field by field.

Kubernetes' protobuf bodies are plain proto2 messages, so reading them
needs only the four wire types Kubernetes' messages use: varint (0),
fixed64 (1), length-delimited (2) and fixed32 (5). This module splits a
message into (field number, wire type, value) without knowing its schema;
`convert` gives the values their meaning. Anything truncated or
ill-formed raises `WireError` with the byte offset, which the API answers
as 400 BadRequest.
"""

from __future__ import annotations

from collections.abc import Iterator

VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5
WIRE_NAMES = {VARINT: "varint", FIXED64: "fixed64", LEN: "length-delimited", FIXED32: "fixed32"}

Field = tuple[int, int, int | bytes]  # (number, wire type, int for varints, bytes otherwise)


class WireError(ValueError):
    """A body that is not well-formed protobuf."""


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """The varint at `pos` and the offset after it."""
    result = shift = 0
    start = pos
    while True:
        if pos >= len(buf):
            raise WireError(f"truncated varint at byte {start}")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise WireError(f"varint longer than 10 bytes at byte {start}")


def fields(buf: bytes) -> Iterator[Field]:
    """Each field of a message in wire order (repeated fields come once per element)."""
    pos = 0
    end = len(buf)
    while pos < end:
        at = pos
        key, pos = read_varint(buf, pos)
        number, wt = key >> 3, key & 7
        if number == 0:
            raise WireError(f"field number 0 at byte {at}")
        if wt == VARINT:
            v, pos = read_varint(buf, pos)
            yield number, wt, v
        elif wt == LEN:
            n, pos = read_varint(buf, pos)
            if pos + n > end:
                raise WireError(
                    f"field {number} at byte {at}: length {n} runs past the end "
                    f"({end - pos} bytes left)"
                )
            yield number, wt, buf[pos : pos + n]
            pos += n
        elif wt in (FIXED64, FIXED32):
            size = 8 if wt == FIXED64 else 4
            if pos + size > end:
                raise WireError(f"field {number} at byte {at}: truncated {WIRE_NAMES[wt]}")
            yield number, wt, buf[pos : pos + size]
            pos += size
        else:
            raise WireError(f"field {number} at byte {at}: unsupported wire type {wt}")


def signed(v: int, bits: int) -> int:
    """A varint read as a two's-complement intN (negative int32s are sign-extended to 64 bits)."""
    v &= (1 << 64) - 1
    if v >= 1 << 63:
        v -= 1 << 64
    if bits == 32 and not -(1 << 31) <= v < 1 << 31:
        raise WireError(f"value {v} out of range for int32")
    return v


def packed_varints(buf: bytes) -> list[int]:
    """The elements of a packed repeated varint field."""
    out = []
    pos = 0
    while pos < len(buf):
        v, pos = read_varint(buf, pos)
        out.append(v)
    return out


def encode_varint(v: int) -> bytes:
    """The varint encoding of a non-negative int (negatives as 64-bit two's complement)."""
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode_field(number: int, value: int | bytes | str) -> bytes:
    """One field: varint for ints, length-delimited for bytes and str."""
    if isinstance(value, int):
        return encode_varint(number << 3 | VARINT) + encode_varint(value)
    raw = value.encode() if isinstance(value, str) else value
    return encode_varint(number << 3 | LEN) + encode_varint(len(raw)) + raw
