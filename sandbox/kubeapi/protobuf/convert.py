"""A tabled protobuf message to the JSON the API stores and answers.

The API keeps objects as JSON, so a protobuf body is turned into exactly
the JSON a client would have sent for the same Go object: Go's
encoding/json rules decide what appears (zero values of `omitempty`
fields are left out; pointers that are set and struct values are always
written; a nil list without `omitempty` is null), and the special types
take their JSON forms: Time as RFC 3339 seconds (zero as null),
Quantity and IntOrString as their string or number, FieldsV1 as the JSON
it holds, bytes as base64. A field number the table lacks raises
`UnknownField`, so a body is never silently cut short.
"""

from __future__ import annotations

import base64
import datetime
import json
from typing import Any

from . import wire
from .table import MESSAGES, Field, Message
from .wire import LEN, VARINT, WireError

_WIRE_OF = {"str": LEN, "bytes": LEN, "i32": VARINT, "i64": VARINT, "bool": VARINT}


class UnknownField(Exception):
    """A well-formed field this server's tables do not describe."""

    def __init__(self, message: str, number: int, path: str) -> None:
        super().__init__(f"field {number} of {message} (at {path or '.'}) is not known")
        self.message, self.number, self.path = message, number, path


def _sub(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _expect(f: Field, wt: int, where: str) -> None:
    want = _WIRE_OF.get(f.type, LEN)
    if wt != want:
        raise WireError(
            f"{where}: wire type {wire.WIRE_NAMES.get(wt, wt)}, "
            f"expected {wire.WIRE_NAMES[want]} for {f.type}"
        )


def _scalar(typ: str, v: int | bytes, where: str) -> Any:
    if typ == "str":
        assert isinstance(v, bytes)
        try:
            return v.decode()
        except UnicodeDecodeError:
            raise WireError(f"{where}: string is not valid UTF-8") from None
    if typ == "bytes":
        assert isinstance(v, bytes)
        return base64.b64encode(v).decode()
    assert isinstance(v, int)
    if typ == "bool":
        return v != 0
    try:
        return wire.signed(v, 32 if typ == "i32" else 64)
    except WireError as e:
        raise WireError(f"{where}: {e}") from None


def _only(buf: bytes, name: str, where: str, allowed: dict[int, int]) -> dict[int, int | bytes]:
    """The fields of a small fixed message (number -> wire type), last one wins."""
    out: dict[int, int | bytes] = {}
    for num, wt, v in wire.fields(buf):
        if num not in allowed:
            raise UnknownField(name, num, where)
        if wt != allowed[num]:
            raise WireError(f"{where}: field {num} of {name} has wire type {wt}")
        out[num] = v
    return out


def _time(buf: bytes, where: str) -> str | None:
    f = _only(buf, "Time", where, {1: VARINT, 2: VARINT})
    secs = wire.signed(int(f.get(1, 0)), 64)
    if secs == 0 and not f.get(2):
        return None  # the zero Time marshals as null
    try:
        t = datetime.datetime.fromtimestamp(secs, datetime.UTC)
    except (OverflowError, OSError, ValueError):
        raise WireError(f"{where}: time {secs}s is out of range") from None
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _int_or_string(buf: bytes, where: str) -> int | str:
    f = _only(buf, "IntOrString", where, {1: VARINT, 2: VARINT, 3: LEN})
    kind = int(f.get(1, 0))
    if kind == 0:
        return int(wire.signed(int(f.get(2, 0)), 32))
    if kind == 1:
        return str(_scalar("str", f.get(3, b""), where))
    raise WireError(f"{where}: IntOrString type {kind} is neither 0 (int) nor 1 (string)")


def _quantity(buf: bytes, where: str) -> str:
    f = _only(buf, "Quantity", where, {1: LEN})
    return str(_scalar("str", f.get(1, b""), where)) or "0"


def _fields_v1(buf: bytes, where: str) -> Any:
    f = _only(buf, "FieldsV1", where, {1: LEN})
    raw = f.get(1, b"")
    assert isinstance(raw, bytes)
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise WireError(f"{where}: FieldsV1 does not hold JSON") from None


_SPECIAL = {
    "Time": _time,
    "IntOrString": _int_or_string,
    "Quantity": _quantity,
    "FieldsV1": _fields_v1,
}


def _value(f: Field, wt: int, v: int | bytes, where: str) -> Any:
    """One element of a field (a repeated field's element, a map's value)."""
    if f.type in _SPECIAL:
        assert isinstance(v, bytes)
        return _SPECIAL[f.type](v, where)
    if f.is_message:
        assert isinstance(v, bytes)
        return decode_message(MESSAGES[f.type], v, where)
    return _scalar(f.type, v, where)


def _map_entry(f: Field, buf: bytes, where: str) -> tuple[str, Any]:
    key: str = ""
    raw: tuple[int, int | bytes] | None = None
    for num, wt, v in wire.fields(buf):
        if num == 1:
            if wt != LEN:
                raise WireError(f"{where}: map key has wire type {wt}")
            key = _scalar("str", v, where)
        elif num == 2:
            raw = (wt, v)
        else:
            raise UnknownField(f"{f.name} map entry", num, where)
    at = f"{where}[{key}]"
    if raw is None:
        return key, _zero(f, at, element=True)
    _expect(f, raw[0], where)
    return key, _value(f, raw[0], raw[1], at)


def _zero(f: Field, where: str, element: bool = False) -> Any:
    """The JSON of a field's Go zero value (absent on the wire)."""
    if not element and (f.pointer or f.repeated or f.map):
        return None
    if f.type == "Time":
        return None
    if f.type == "Quantity":
        return "0"
    if f.type == "IntOrString":
        return 0
    if f.is_message:
        return decode_message(MESSAGES[f.type], b"", where)
    return {"str": "", "bytes": "", "i32": 0, "i64": 0, "bool": False}[f.type]


def _packed(f: Field, wt: int, v: int | bytes) -> list[int | bytes] | None:
    """The elements of a packed repeated number field, if this is one."""
    if f.repeated and wt == LEN and _WIRE_OF.get(f.type) == VARINT:
        assert isinstance(v, bytes)
        return list(wire.packed_varints(v))
    return None


def decode_message(msg: Message, buf: bytes, path: str = "") -> dict[str, Any]:
    """The JSON object of one message."""
    seen: dict[int, Any] = {}
    for num, wt, v in wire.fields(buf):
        f = msg.fields.get(num)
        if f is None:
            raise UnknownField(msg.name, num, path)
        where = _sub(path, f.name)
        if f.map:
            if wt != LEN:
                raise WireError(f"{where}: map entry has wire type {wt}")
            assert isinstance(v, bytes)
            k, val = _map_entry(f, v, where)
            seen.setdefault(num, {})[k] = val
            continue
        packed = _packed(f, wt, v)
        if packed is not None:
            items = seen.setdefault(num, [])
            items.extend(_value(f, VARINT, x, f"{where}[{len(items)}]") for x in packed)
            continue
        _expect(f, wt, where)
        if f.repeated:
            items = seen.setdefault(num, [])
            items.append(_value(f, wt, v, f"{where}[{len(items)}]"))
        else:
            seen[num] = _value(f, wt, v, where)  # the last occurrence wins
    out: dict[str, Any] = {}
    for num, f in msg.fields.items():
        where = _sub(path, f.name)
        val = _emitted(f, seen[num]) if num in seen else _absent(f, where)
        if val is _OMIT:
            continue
        if f.inline:
            if isinstance(val, dict):
                out.update(val)
        else:
            out[f.name] = val
    return out


_OMIT = object()


def _is_struct(f: Field) -> bool:
    """A Go struct value (not a pointer, list or map): JSON always writes it."""
    return (f.is_message or f.type in _SPECIAL) and not (f.pointer or f.repeated or f.map)


def _emitted(f: Field, val: Any) -> Any:
    """What JSON holds for a field present on the wire (_OMIT: nothing)."""
    if f.repeated or f.map:
        if val:
            return val
        return None if f.always else _OMIT
    if f.is_message or f.type in _SPECIAL:
        return val
    if not val and not (f.pointer or f.always):
        return _OMIT  # omitempty drops a zero scalar
    return val


def _absent(f: Field, where: str) -> Any:
    """What JSON holds for a field absent on the wire (_OMIT: nothing)."""
    if f.always or _is_struct(f):
        return _zero(f, where)
    return _OMIT
