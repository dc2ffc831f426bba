"""How the message tables are written, and where they are kept.

Protobuf bodies carry field numbers, not names, so decoding one needs, per
message, what each number means in the object's JSON. The tables (`meta`,
`core`, `groups`) are this project's own compact transcription of the
field numbers Kubernetes publishes for its types, written in a one-line
notation per field, with the Go JSON rules the API's answers follow:

    NUMBER NAME TYPE[FLAGS]

TYPE is a scalar (`str`, `i32`, `i64`, `bool`, `bytes`), a special
(`Time`, `Quantity`, `IntOrString`, `FieldsV1`), or another message's
name; `[T]` is a repeated field and `{T}` a map from string to T (on the
wire: repeated entries with key = 1, value = 2). FLAGS:

    ?  a Go pointer: present on the wire means set, so a zero is kept
    !  no `omitempty`: emitted even when zero or absent (nil lists as null)
    ^  an inlined Go struct: its fields are merged into the parent

A message field without `?` is a Go struct value, which JSON always emits
(omitempty never drops a struct), so it is emitted even when absent.
Only the fields listed are understood; any other number is refused by
`convert`, naming the message and the field, rather than dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SCALARS = frozenset({"str", "i32", "i64", "bool", "bytes"})
SPECIALS = frozenset({"Time", "Quantity", "IntOrString", "FieldsV1"})


@dataclass(frozen=True)
class Field:
    number: int
    name: str
    type: str
    repeated: bool = False
    map: bool = False
    pointer: bool = False
    always: bool = False
    inline: bool = False

    @property
    def is_message(self) -> bool:
        return self.type not in SCALARS and self.type not in SPECIALS


@dataclass(frozen=True)
class Message:
    name: str
    fields: dict[int, Field]


MESSAGES: dict[str, Message] = {}

_LINE = re.compile(r"^(\d+)\s+(\w+|-)\s+(\[\w+\]|\{\w+\}|\w+)([?!^]*)$")


def message(name: str, spec: str) -> Message:
    """Register a message from its fields, one per line or `;`-separated."""
    if name in MESSAGES:
        raise ValueError(f"message {name} defined twice")
    out: dict[int, Field] = {}
    for entry in re.split(r"[;\n]", spec):
        entry = entry.strip()
        if not entry:
            continue
        m = _LINE.match(entry)
        if m is None:
            raise ValueError(f"{name}: bad field line {entry!r}")
        num, fname, typ, flags = m.groups()
        repeated, is_map = typ.startswith("["), typ.startswith("{")
        f = Field(
            number=int(num),
            name=fname,
            type=typ.strip("[]{}"),
            repeated=repeated,
            map=is_map,
            pointer="?" in flags,
            always="!" in flags,
            inline="^" in flags,
        )
        if f.number in out:
            raise ValueError(f"{name}: field {f.number} listed twice")
        out[f.number] = f
    msg = Message(name, out)
    MESSAGES[name] = msg
    return msg


def check_references() -> None:
    """Every message type a field names is defined (run once the tables load)."""
    for msg in MESSAGES.values():
        for f in msg.fields.values():
            if f.is_message and f.type not in MESSAGES:
                raise ValueError(f"{msg.name}.{f.name}: unknown message type {f.type}")
