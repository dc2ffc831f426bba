"""Kubernetes' protobuf envelope around an object.

A body of media type application/vnd.kubernetes.protobuf is the four
bytes `k8s\\x00` followed by a runtime.Unknown message: typeMeta (1:
apiVersion = 1, kind = 2), raw (2: the object's own message),
contentEncoding (3) and contentType (4). The envelope names the kind,
which is how the decoder picks the object's message table.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import wire
from .convert import UnknownField
from .wire import LEN, WireError

MAGIC = b"k8s\x00"


@dataclass(frozen=True)
class Envelope:
    api_version: str
    kind: str
    raw: bytes
    content_encoding: str
    content_type: str


def _strings(buf: bytes, name: str, allowed: set[int]) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    for num, wt, v in wire.fields(buf):
        if num not in allowed:
            raise UnknownField(name, num, "")
        if wt != LEN:
            raise WireError(f"field {num} of {name}: wire type {wt}, expected length-delimited")
        assert isinstance(v, bytes)
        out[num] = v
    return out


def _text(v: bytes | None, what: str) -> str:
    try:
        return (v or b"").decode()
    except UnicodeDecodeError:
        raise WireError(f"{what} is not valid UTF-8") from None


def unwrap(body: bytes) -> Envelope:
    """The envelope of a protobuf body (WireError if it is not one)."""
    if not body.startswith(MAGIC):
        raise WireError(
            f"the body does not start with the protobuf envelope's magic {MAGIC!r} "
            f"(got {body[:4]!r})"
        )
    unknown = _strings(body[len(MAGIC) :], "runtime.Unknown", {1, 2, 3, 4})
    type_meta = _strings(unknown.get(1, b""), "runtime.TypeMeta", {1, 2})
    return Envelope(
        api_version=_text(type_meta.get(1), "apiVersion"),
        kind=_text(type_meta.get(2), "kind"),
        raw=unknown.get(2, b""),
        content_encoding=_text(unknown.get(3), "contentEncoding"),
        content_type=_text(unknown.get(4), "contentType"),
    )


def wrap(api_version: str, kind: str, raw: bytes) -> bytes:
    """An envelope around an object's message (what a client sends)."""
    type_meta = wire.encode_field(1, api_version) + wire.encode_field(2, kind)
    return MAGIC + wire.encode_field(1, type_meta) + wire.encode_field(2, raw)
