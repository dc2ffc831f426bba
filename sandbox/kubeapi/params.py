# ruff: noqa: E501  (messages quote the real API server word for word)
"""Reading a request's parameters the way the real API server does.

The query flags (Go's ParseBool), integers, the write and delete options,
list resourceVersion semantics, the body's media type and the Accept
header's `as=` (Table, PartialObjectMetadata) all have documented
behaviour and documented errors; they are kept here, apart from routing,
so each verb's handler reads as what it does.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from aiohttp import web
from multidict import MultiMapping

from . import protobuf
from .errors import ApiError, bad_request
from .options import DeleteOptions, WriteOptions
from .resources import Obj, ResourceType
from .selectors import FieldReq, Requirement, parse_field_selector, parse_label_selector

Query = MultiMapping[str]
_JSON = "application/json"


def selectors(q: Query, rt: ResourceType) -> tuple[list[Requirement], list[FieldReq]]:
    """labelSelector and fieldSelector (unsupported fields named as the real server does)."""
    desc = f"{rt.group}/{rt.version}, Resource={rt.plural}"
    labels = parse_label_selector(q.get("labelSelector"))
    return labels, parse_field_selector(q.get("fieldSelector"), rt.gr, desc)


def accept_mode(request: web.Request) -> str:
    """'table', 'partial' or 'object', from the Accept header's as= parameter."""
    acc = request.headers.get("Accept", "")
    for part in acc.split(","):
        params = {
            k.strip(): v.strip() for k, _, v in (p.partition("=") for p in part.split(";")[1:])
        }
        as_ = params.get("as")
        if as_ == "Table" and params.get("g") == "meta.k8s.io":
            return "table"
        if (
            as_ in ("PartialObjectMetadata", "PartialObjectMetadataList")
            and params.get("g") == "meta.k8s.io"
        ):
            return "partial"
        mime = part.split(";")[0].strip()
        if mime in ("application/json", "*/*", "application/*", "") and not as_:
            return "object"
    return "object"


def _too_large(want: int, current: int) -> ApiError:
    return ApiError(
        504,
        f"Too large resource version: {want}, current: {current}",
        "Timeout",
        {
            "causes": [
                {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}
            ],
            "retryAfterSeconds": 1,
        },
    )


def flag(v: str | None) -> bool:
    """Go's strconv.ParseBool, which the real server uses for query flags."""
    return v in ("1", "t", "T", "true", "TRUE", "True")


def int_param(q: Query, name: str) -> int | None:
    v = q.get(name)
    if v in (None, ""):
        return None
    try:
        return int(v)
    except ValueError:
        raise bad_request(f'invalid value for {name}: "{v}": must be an integer') from None


def _protobuf_body(raw: bytes) -> Any:
    """A protobuf body as the JSON object it encodes (see `protobuf`)."""
    try:
        return protobuf.decode(raw)
    except protobuf.WireError as e:
        raise bad_request(f"error decoding protobuf request body: {e}") from None
    except protobuf.Unsupported as e:
        raise ApiError(415, str(e), "UnsupportedMediaType") from None


async def read_body(request: web.Request) -> Any:
    """The body as JSON, YAML or protobuf, by its Content-Type."""
    raw = await request.read()
    ctype = request.headers.get("Content-Type", _JSON).split(";")[0].strip().lower()
    if ctype == protobuf.MEDIA_TYPE:
        return _protobuf_body(raw)
    try:
        if ctype in ("application/json", ""):
            return json.loads(raw)
        if ctype in ("application/yaml", "application/x-yaml", "text/yaml"):
            return yaml.safe_load(raw)
    except (ValueError, yaml.YAMLError) as e:
        raise bad_request(f"error decoding request body: {e}") from None
    raise ApiError(
        415,
        "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf",
        "UnsupportedMediaType",
    )


def write_options(q: Query) -> WriteOptions:
    fv = q.get("fieldValidation") or "Warn"
    if fv not in ("Ignore", "Warn", "Strict"):
        raise bad_request(
            f'fieldValidation: Unsupported value: "{fv}": supported values: "Ignore", "Strict", "Warn"'
        )
    dry = q.getall("dryRun", [])
    for d in dry:
        if d != "All":
            raise bad_request(f'dryRun: Unsupported value: "{d}": supported values: "All"')
    return WriteOptions(
        dry_run=bool(dry), field_validation=fv, field_manager=q.get("fieldManager", "")
    )


async def delete_options(request: web.Request) -> DeleteOptions:
    """DeleteOptions from the body (kubectl) or the query (client-go)."""
    q = request.query
    body: Obj = {}
    if request.can_read_body:
        raw = await request.read()
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError as e:
                raise bad_request(f"error decoding DeleteOptions: {e}") from None
            if not isinstance(body, dict):
                raise bad_request("DeleteOptions must be a JSON object")
    grace = body.get("gracePeriodSeconds")
    qgrace = int_param(q, "gracePeriodSeconds")
    if qgrace is not None:
        grace = qgrace
    pre = body.get("preconditions") or {}
    dry = body.get("dryRun") or q.getall("dryRun", [])
    return DeleteOptions(
        grace_period=grace,
        precondition_uid=pre.get("uid"),
        precondition_rv=pre.get("resourceVersion"),
        propagation=body.get("propagationPolicy") or q.get("propagationPolicy"),
        dry_run=bool(dry),
    )


def check_list_version(rv: str, match: str, current: int) -> None:
    """resourceVersion/resourceVersionMatch on a list. The store keeps no
    old snapshots: an exact older version is 410 Gone, a version from
    the future is 504 as the real server answers once its wait runs out."""
    if match and not rv:
        raise bad_request("resourceVersionMatch is forbidden unless resourceVersion is provided")
    if match not in ("", "Exact", "NotOlderThan"):
        raise bad_request(
            f'resourceVersionMatch: Unsupported value: "{match}": supported values: "Exact", "NotOlderThan"'
        )
    if rv in ("", "0"):
        if match == "Exact":
            raise bad_request('resourceVersionMatch "Exact" is forbidden for resourceVersion "0"')
        return
    try:
        want = int(rv)
    except ValueError:
        raise bad_request(f'invalid resource version: "{rv}"') from None
    if want > current:
        raise _too_large(want, current)
    if match == "Exact" and want != current:
        raise ApiError(410, f"too old resource version: {want} ({current})", "Expired")
