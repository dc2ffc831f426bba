"""JSON for the shim without importing `json`.

`import json` pulls in `re` (and through it enum and the regex compiler),
about half of the shim's import time. The C accelerator `_json` that `json`
itself uses parses and escapes strings without any of that, so the shim
calls it directly; the output matches `json.loads` / `json.dumps` with
default settings for the values the shim handles.
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time; annotations are strings here
    from typing import Any


class _Context:
    # The attributes _json.make_scanner reads from json.JSONDecoder.
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, str] = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}[name]


_scan = _json.make_scanner(_Context())  # type: ignore[arg-type]  # duck-typed by the C code
_WS = " \t\n\r"


def loads(data: bytes | str) -> Any:
    """Parse one JSON document; ValueError (or UnicodeDecodeError) if it is not."""
    text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
    if text.startswith("\ufeff"):
        raise ValueError("unexpected UTF-8 BOM")
    start = len(text) - len(text.lstrip(_WS))
    try:
        value, end = _scan(text, start)
    except StopIteration as err:
        raise ValueError(f"expecting a value at char {err.value}") from None
    finally:
        _Context.memo.clear()
    if text[end:].strip(_WS):
        raise ValueError(f"extra data at char {end}")
    return value


def dumps(value: Any) -> str:
    """json.dumps(value) for str, int, bool, None, list and dict with str keys."""
    if isinstance(value, str):
        return str(_json.encode_basestring_ascii(value))
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(dumps(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{dumps(str(k))}: {dumps(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot encode {type(value).__name__}")
