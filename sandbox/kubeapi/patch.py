# ruff: noqa: E501  (messages quote the real API server word for word)
"""The three PATCH formats Kubernetes accepts.

JSON Patch (RFC 6902) and JSON Merge Patch (RFC 7386) are generic. Strategic
merge patch is Kubernetes' own: lists whose Go type declares a merge key
(containers by name, conditions by type, ...) merge item by item instead of
being replaced, and `$patch` / `$deleteFromPrimitiveList` directives apply.
The merge keys below cover the built-in fields kovn and kubectl touch.
"""

from __future__ import annotations

import copy
from typing import Any

from .errors import ApiError, bad_request

# field name -> merge key ("" means: a list of primitives merged as a set).
# Keyed by (parent field, field) where the same name means different things.
_MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "conditions": "type",
    "finalizers": "",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "addresses": "type",
    "taints": "key",
    "podIPs": "ip",
    "hostIPs": "ip",
    "containerStatuses": "name",
    "initContainerStatuses": "name",
    "topologySpreadConstraints": "topologyKey",
}
_PORT_KEYS = {"containers": "containerPort", "initContainers": "containerPort", "spec": "port"}


def _merge_key(parent: str, name: str) -> str | None:
    if name == "ports":
        return _PORT_KEYS.get(parent)
    if name == "addresses" and parent != "status":
        return None
    return _MERGE_KEYS.get(name)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


def _unescape(tok: str) -> str:
    return tok.replace("~1", "/").replace("~0", "~")


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError(
            422,
            f'the server rejected our request due to an error in our request: invalid path "{path}"',
            "Invalid",
        )
    return [_unescape(t) for t in path[1:].split("/")]


def _walk(doc: Any, toks: list[str], path: str) -> Any:
    cur = doc
    for t in toks:
        if isinstance(cur, dict):
            if t not in cur:
                raise _patch_fail(f'doc is missing path: "{path}"')
            cur = cur[t]
        elif isinstance(cur, list):
            cur = cur[_index(cur, t, path, allow_end=False)]
        else:
            raise _patch_fail(f'doc is missing path: "{path}"')
    return cur


def _patch_fail(msg: str) -> ApiError:
    return ApiError(
        422, f"the server rejected our request due to an error in our request: {msg}", "Invalid"
    )


def _index(lst: list[Any], tok: str, path: str, allow_end: bool) -> int:
    if tok == "-" and allow_end:
        return len(lst)
    try:
        i = int(tok)
    except ValueError:
        raise _patch_fail(f'invalid array index "{tok}" in path "{path}"') from None
    if i < 0 or i > len(lst) or (i == len(lst) and not allow_end):
        raise _patch_fail(f'array index out of bounds in path "{path}"')
    return i


def json_patch(doc: Any, ops: Any) -> Any:
    """RFC 6902; any failing op fails the whole patch."""
    if not isinstance(ops, list):
        raise bad_request(
            "json: cannot unmarshal object into Go value of type []handlers.jsonPatchOp"
        )
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise bad_request(f"invalid JSON patch operation: {op!r}")
        kind, path = op["op"], op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise bad_request(f'JSON patch operation "{kind}" at "{path}" needs a "value"')
        if kind == "test":
            if _walk(doc, _pointer(path), path) != op["value"]:
                raise _patch_fail(f"testing value {path} failed")
            continue
        if kind in ("move", "copy"):
            src = op.get("from", "")
            value = copy.deepcopy(_walk(doc, _pointer(src), src))
            if kind == "move":
                doc = _remove(doc, _pointer(src), src)
            doc = _add(doc, _pointer(path), path, value)
        elif kind == "add":
            doc = _add(doc, _pointer(path), path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            doc = _remove(doc, _pointer(path), path)
        elif kind == "replace":
            doc = _remove(doc, _pointer(path), path)
            doc = _add(doc, _pointer(path), path, copy.deepcopy(op["value"]))
        else:
            raise bad_request(f'unknown JSON patch operation "{kind}"')
    return doc


def _add(doc: Any, toks: list[str], path: str, value: Any) -> Any:
    if not toks:
        return value
    parent = _walk(doc, toks[:-1], path)
    last = toks[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, path, allow_end=True), value)
    else:
        raise _patch_fail(f'doc is missing path: "{path}"')
    return doc


def _remove(doc: Any, toks: list[str], path: str) -> Any:
    if not toks:
        return None
    parent = _walk(doc, toks[:-1], path)
    last = toks[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _patch_fail(f"Unable to remove nonexistent key: {last}: missing value")
        del parent[last]
    elif isinstance(parent, list):
        del parent[_index(parent, last, path, allow_end=False)]
    else:
        raise _patch_fail(f'doc is missing path: "{path}"')
    return doc


_DEL_PRIM = "$deleteFromPrimitiveList/"
_ORDER = "$setElementOrder/"


def strategic_merge(target: Any, patch: Any, parent: str = "") -> Any:
    """Strategic merge patch of one map level."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if k in ("$patch", "$retainKeys") or k.startswith(_ORDER):
            continue
        if k.startswith(_DEL_PRIM):
            field = k[len(_DEL_PRIM) :]
            drop = set(map(_hashable, v or []))
            cur = result.get(field)
            if isinstance(cur, list):
                result[field] = [x for x in cur if _hashable(x) not in drop]
            continue
        if v is None:
            result.pop(k, None)
            continue
        cur = result.get(k)
        if isinstance(v, list):
            key = _merge_key(parent, k)
            if key is None or not isinstance(cur, list):
                result[k] = _strip_directives(v)
            elif key == "":
                merged = list(cur)
                seen = set(map(_hashable, cur))
                for item in v:
                    if _hashable(item) not in seen:
                        merged.append(copy.deepcopy(item))
                        seen.add(_hashable(item))
                result[k] = merged
            else:
                result[k] = _merge_list(cur, v, key, k)
        elif isinstance(v, dict):
            merged_v = strategic_merge(cur, v, k)
            if merged_v is None:
                result.pop(k, None)
            else:
                result[k] = merged_v
        else:
            result[k] = v
    return result


def _merge_list(cur: list[Any], patch: list[Any], key: str, field: str) -> list[Any]:
    out = [copy.deepcopy(x) for x in cur]
    for item in patch:
        if not isinstance(item, dict):
            raise bad_request(f"strategic merge patch: {field} items must be objects")
        if item.get("$patch") == "replace":
            return [_strip_directives(x) for x in patch if x.get("$patch") != "replace"]
        kv = item.get(key)
        idx = next((i for i, x in enumerate(out) if isinstance(x, dict) and x.get(key) == kv), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                del out[idx]
            continue
        if idx is None:
            out.append(_strip_directives(item))
        else:
            out[idx] = strategic_merge(out[idx], item, field)
    return out


def _strip_directives(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _strip_directives(x) for k, x in v.items() if not k.startswith("$")}
    if isinstance(v, list):
        return [_strip_directives(x) for x in v]
    return v


def _hashable(v: Any) -> Any:
    return repr(v) if isinstance(v, (dict, list)) else v
