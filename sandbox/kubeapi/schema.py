# ruff: noqa: E501  (messages quote the real API server word for word)
"""OpenAPI v3 validation and pruning for custom resources.

A CRD's structural schema decides what a custom object may hold: wrong
types, missing required fields, values outside an enum or not matching a
pattern are rejected with the field path and wording Kubernetes uses
(`spec.cidrBlock: Invalid value: "x": spec.cidrBlock in body should match
'...'`). Fields the schema does not declare are pruned, or reported when the
client asked for strict field validation.
"""

from __future__ import annotations

import ipaddress
import json
import operator
import re
from collections.abc import Callable, Sized
from functools import lru_cache
from typing import Any

from .errors import Cause

_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
}


@lru_cache(maxsize=1024)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _is(parse: Callable[[str], object]) -> Callable[[str], bool]:
    def check(v: str) -> bool:
        try:
            parse(v)
        except ValueError:
            return False
        return True

    return check


_MAC = re.compile(r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$")
_UUID = re.compile(
    r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
)
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*$"
)
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")

# The string formats the real server checks that kovn's CRDs are likely to use.
_FORMATS: dict[str, Callable[[str], bool]] = {
    "ipv4": _is(ipaddress.IPv4Address),
    "ipv6": _is(ipaddress.IPv6Address),
    "cidr": _is(lambda v: ipaddress.ip_network(v, strict=False)),
    "mac": lambda v: bool(_MAC.match(v)),
    "uuid": lambda v: bool(_UUID.match(v)),
    "hostname": lambda v: bool(_HOSTNAME.match(v)),
    "date-time": lambda v: bool(_DATETIME.match(v)),
}


def _show(v: Any) -> str:
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":"))
    return str(v)


def _type_ok(t: str, v: Any) -> bool:
    if t == "integer":
        return (isinstance(v, int) and not isinstance(v, bool)) or (
            isinstance(v, float) and v.is_integer()
        )
    if t == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    py = _TYPES.get(t)
    return py is None or isinstance(v, py)


def validate(schema: dict[str, Any], value: Any, path: str, causes: list[Cause]) -> None:
    if value is None:
        if not schema.get("nullable"):
            causes.append(
                (
                    path,
                    "FieldValueTypeInvalid",
                    f'Invalid value: "null": {path} in body must be of type {schema.get("type", "object")}: "null"',
                )
            )
        return
    if schema.get("x-kubernetes-int-or-string"):
        if not (isinstance(value, str) or _type_ok("integer", value)):
            causes.append(
                (
                    path,
                    "FieldValueTypeInvalid",
                    f"Invalid value: {_show(value)}: {path} in body must be of type integer-or-string",
                )
            )
            return
    else:
        t = schema.get("type")
        if t and not _type_ok(t, value):
            causes.append(
                (
                    path,
                    "FieldValueTypeInvalid",
                    f"Invalid value: {_show(_gotype(value))}: {path} in body must be of type {t}: {_show(_gotype(value))}",
                )
            )
            return
    enum = schema.get("enum")
    if enum is not None and value not in enum:
        supported = ", ".join(_show(e) for e in enum)
        causes.append(
            (
                path,
                "FieldValueNotSupported",
                f"Unsupported value: {_show(value)}: supported values: {supported}",
            )
        )
    if isinstance(value, str):
        fmt = schema.get("format")
        if fmt in _FORMATS and not _FORMATS[fmt](value):
            causes.append(
                (
                    path,
                    "FieldValueInvalid",
                    f"Invalid value: {_show(value)}: {path} in body must be of type {fmt}: {_show(value)}",
                )
            )
        pat = schema.get("pattern")
        if pat is not None and not _regex(pat).search(value):
            causes.append(
                (
                    path,
                    "FieldValueInvalid",
                    f"Invalid value: {_show(value)}: {path} in body should match '{pat}'",
                )
            )
        _check_size(schema, "string", value, path, causes)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        for key, excl, beyond, strict, loose in _BOUNDS:
            if key in schema:
                bound = schema[key]
                exclusive = schema.get(excl)
                if beyond(value, bound) or (exclusive and value == bound):
                    rel = strict if exclusive else loose
                    causes.append(
                        (
                            path,
                            "FieldValueInvalid",
                            f"Invalid value: {_show(value)}: {path} in body should be {rel} {bound}",
                        )
                    )
    elif isinstance(value, list):
        _check_size(schema, "array", value, path, causes)
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                validate(items, item, f"{path}[{i}]", causes)
    elif isinstance(value, dict):
        for req in schema.get("required") or []:
            if req not in value:
                causes.append((_join(path, req), "FieldValueRequired", "Required value"))
        props = schema.get("properties") or {}
        addl = schema.get("additionalProperties")
        for k, v in value.items():
            if k in props:
                validate(props[k], v, _join(path, k), causes)
            elif isinstance(addl, dict):
                validate(addl, v, _join(path, k), causes)
        _check_size(schema, "object", value, path, causes)
    for sub in schema.get("allOf") or []:
        validate({**sub, "nullable": True}, value, path, causes)
    if schema.get("anyOf") and not any(_ok(s, value, path) for s in schema["anyOf"]):
        causes.append(
            (
                path,
                "FieldValueInvalid",
                f"Invalid value: {_show(value)}: {path} in body must match at least one schema in anyOf",
            )
        )
    if schema.get("oneOf"):
        n = sum(1 for s in schema["oneOf"] if _ok(s, value, path))
        if n != 1:
            causes.append(
                (
                    path,
                    "FieldValueInvalid",
                    f"Invalid value: {_show(value)}: {path} in body must match exactly one schema in oneOf",
                )
            )
    if schema.get("not") and _ok(schema["not"], value, path):
        causes.append(
            (
                path,
                "FieldValueInvalid",
                f"Invalid value: {_show(value)}: {path} in body must not match the schema in not",
            )
        )


# minimum and maximum: (key, exclusive flag, out of bounds, wording if exclusive, if not)
_BOUNDS: tuple[tuple[str, str, Callable[[Any, Any], bool], str, str], ...] = (
    ("minimum", "exclusiveMinimum", operator.lt, "greater than", "greater than or equal to"),
    ("maximum", "exclusiveMaximum", operator.gt, "less than", "less than or equal to"),
)
# Size limits by JSON type: (max key, its reason, its message, min key, its message).
_SIZES = {
    "string": (
        "maxLength",
        "FieldValueTooLong",
        "Too long: may not be more than {limit} bytes",
        "minLength",
        "Invalid value: {value}: {path} in body should be at least {limit} chars long",
    ),
    "array": (
        "maxItems",
        "FieldValueTooMany",
        "Too many: {n}: must have at most {limit} items",
        "minItems",
        "Invalid value: {n}: {path} in body should have at least {limit} items",
    ),
    "object": (
        "maxProperties",
        "FieldValueTooMany",
        "Too many: {n}: must have at most {limit} items",
        "minProperties",
        "Invalid value: {n}: {path} in body should have at least {limit} properties",
    ),
}


def _check_size(
    schema: dict[str, Any], json_type: str, value: Sized, path: str, causes: list[Cause]
) -> None:
    max_key, max_reason, too_big, min_key, too_small = _SIZES[json_type]
    n = len(value)
    if max_key in schema and n > schema[max_key]:
        limit = schema[max_key]
        causes.append((path, max_reason, too_big.format(n=n, limit=limit, path=path)))
    if min_key in schema and n < schema[min_key]:
        msg = too_small.format(n=n, limit=schema[min_key], path=path, value=_show(value))
        causes.append((path, "FieldValueInvalid", msg))


def _ok(schema: dict[str, Any], value: Any, path: str) -> bool:
    c: list[Cause] = []
    validate({**schema, "nullable": True}, value, path, c)
    return not c


def _gotype(v: Any) -> Any:
    """The type name Kubernetes prints for a value of the wrong type."""
    if isinstance(v, str):
        return "string"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, list):
        return "array"
    return "object"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def prune(schema: dict[str, Any], value: Any, path: str, unknown: list[str]) -> Any:
    """Drop fields the schema does not declare; record their paths."""
    if schema.get("x-kubernetes-preserve-unknown-fields") and not schema.get("properties"):
        return value
    if isinstance(value, dict):
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        if props is None and addl is None:
            if schema.get("type") == "object" and not preserve:
                for k in value:
                    unknown.append(_join(path, k))
                return {}
            return value
        out = {}
        for k, v in value.items():
            if props is not None and k in props:
                out[k] = prune(props[k], v, _join(path, k), unknown)
            elif isinstance(addl, dict):
                out[k] = prune(addl, v, _join(path, k), unknown)
            elif addl is True or preserve:
                out[k] = v
            else:
                unknown.append(_join(path, k))
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune(schema["items"], x, f"{path}[{i}]", unknown) for i, x in enumerate(value)]
    return value


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Fill in `default`s of absent fields, as the API server does on decode."""
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        out = dict(value)
        for k, sub in props.items():
            if k not in out and isinstance(sub, dict) and "default" in sub:
                out[k] = json.loads(json.dumps(sub["default"]))
        for k, v in out.items():
            if k in props and isinstance(props[k], dict):
                out[k] = apply_defaults(props[k], v)
            elif isinstance(schema.get("additionalProperties"), dict):
                out[k] = apply_defaults(schema["additionalProperties"], v)
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(schema["items"], x) for x in value]
    return value


def check_object(
    schema: dict[str, Any] | None, obj: dict[str, Any]
) -> tuple[dict[str, Any], list[str], list[Cause]]:
    """Prune then validate a custom object; returns (object, unknown fields, causes)."""
    if not schema:
        return obj, [], []
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    unknown: list[str] = []
    top = dict(schema)
    props = dict(top.get("properties") or {})
    for k in ("apiVersion", "kind", "metadata"):
        props.pop(k, None)
    top["properties"] = props
    pruned = apply_defaults(top, prune(top, body, "", unknown))
    causes: list[Cause] = []
    validate(top, pruned, "", causes)
    out: dict[str, Any] = {k: obj[k] for k in ("apiVersion", "kind", "metadata") if k in obj}
    out.update(pruned)
    return out, unknown, causes


def validate_crd_schema(schema: Any, path: str, causes: list[Cause]) -> None:
    """The structural-schema checks a CRD needs to be usable here."""
    if not isinstance(schema, dict):
        causes.append((path, "FieldValueRequired", "Required value: schemas are required"))
        return
    for k in ("pattern",):
        if k in schema:
            try:
                re.compile(schema[k])
            except re.error as e:
                causes.append(
                    (f"{path}.{k}", "FieldValueInvalid", f"Invalid value: {_show(schema[k])}: {e}")
                )
    for name, sub in (schema.get("properties") or {}).items():
        validate_crd_schema(sub, f"{path}.properties[{name}]", causes)
    if isinstance(schema.get("items"), dict):
        validate_crd_schema(schema["items"], f"{path}.items", causes)
