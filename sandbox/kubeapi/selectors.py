"""Label and field selectors, parsed once per request and matched per object.

The grammar is Kubernetes' (`a=b,c!=d,e in (x,y),f notin (z),g,!h`); bad
syntax or an unsupported field is a 400 naming the selector, as the real
server answers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import bad_request

_KEY = re.compile(
    r"^([a-z0-9A-Z]([-a-z0-9A-Z.]*[a-z0-9A-Z])?/)?[a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?$"
)
_VAL = re.compile(r"^([a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?)?$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: frozenset[str]

    def matches(self, labels: dict[str, str]) -> bool:
        has = self.key in labels
        if self.op == "exists":
            return has
        if self.op == "!exists":
            return not has
        if self.op in ("=", "in"):
            return has and labels[self.key] in self.values
        # "!=" and "notin" match objects without the label too.
        return not has or labels[self.key] not in self.values


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


_SET = re.compile(r"^\s*(\S+?)\s+(in|notin)\s*\((.*)\)\s*$")


def _check_key(key: str, selector: str) -> None:
    if not _KEY.match(key):
        raise bad_request(
            f'unable to parse requirement: invalid label key "{key}" in selector "{selector}"'
        )


def _check_value(val: str, selector: str) -> None:
    if len(val) > 63 or not _VAL.match(val):
        raise bad_request(
            f'unable to parse requirement: invalid label value: "{val}" in selector "{selector}"'
        )


def parse_label_selector(text: str | None) -> list[Requirement]:
    if not text or not text.strip():
        return []
    reqs = []
    for raw in _split_top(text):
        part = raw.strip()
        if not part:
            raise bad_request(
                f"unable to parse requirement: found '', expected: identifier in \"{text}\""
            )
        m = _SET.match(part)
        if m:
            key, op, vals = m.group(1), m.group(2), m.group(3)
            values = [v.strip() for v in vals.split(",")] if vals.strip() else []
            _check_key(key, text)
            for v in values:
                _check_value(v, text)
            reqs.append(Requirement(key, op, frozenset(values)))
            continue
        for op_text, op in (("!=", "!="), ("==", "="), ("=", "=")):
            if op_text in part:
                key, _, val = part.partition(op_text)
                key, val = key.strip(), val.strip()
                _check_key(key, text)
                _check_value(val, text)
                reqs.append(Requirement(key, op, frozenset([val])))
                break
        else:
            if part.startswith("!"):
                key = part[1:].strip()
                _check_key(key, text)
                reqs.append(Requirement(key, "!exists", frozenset()))
            else:
                if " " in part or "(" in part:
                    raise bad_request(f"unable to parse requirement: found '{part}' in \"{text}\"")
                _check_key(part, text)
                reqs.append(Requirement(part, "exists", frozenset()))
    return reqs


def labels_match(reqs: list[Requirement], obj: dict[str, Any]) -> bool:
    if not reqs:
        return True
    labels = obj.get("metadata", {}).get("labels") or {}
    return all(r.matches(labels) for r in reqs)


# Field selectors: which fields each kind supports, and how to read them.
def _get(path: str) -> Callable[[dict[str, Any]], str]:
    keys = path.split(".")

    def read(obj: dict[str, Any]) -> str:
        cur: Any = obj
        for k in keys:
            if not isinstance(cur, dict):
                return ""
            cur = cur.get(k)
        if cur is None:
            return ""
        if isinstance(cur, bool):
            return "true" if cur else "false"
        return str(cur)

    return read


_COMMON = ("metadata.name", "metadata.namespace")
FIELDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "pods"): (
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    ("", "nodes"): ("spec.unschedulable",),
    ("", "namespaces"): ("status.phase",),
    ("", "secrets"): ("type",),
    ("", "events"): (
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
}


@dataclass(frozen=True)
class FieldReq:
    read: Callable[[dict[str, Any]], str]
    equal: bool
    value: str
    key: str = ""


def parse_field_selector(
    text: str | None, gr: tuple[str, str], resource_desc: str
) -> list[FieldReq]:
    if not text or not text.strip():
        return []
    allowed = set(_COMMON) | set(FIELDS.get(gr, ()))
    out = []
    for raw in text.split(","):
        part = raw.strip()
        for op_text, is_eq in (("!=", False), ("==", True), ("=", True)):
            if op_text in part:
                key, _, val = part.partition(op_text)
                equal = is_eq
                break
        else:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        key = key.strip()
        if key not in allowed:
            raise bad_request(
                f'Unable to find "{resource_desc}" that match label selector "", field '
                f'selector "{text}": field label not supported: {key}'
            )
        path = "metadata.name" if key == "metadata.name" else key
        reader = _get(path)
        if key == "source":
            reader = _get("source.component")
        out.append(FieldReq(reader, equal, val.strip(), key))
    return out


def fields_match(reqs: list[FieldReq], obj: dict[str, Any]) -> bool:
    return all((r.read(obj) == r.value) == r.equal for r in reqs)


def selector_string(selector: Any) -> str:
    """A metav1 LabelSelector in its string form (as a Scale's
    status.selector carries it): requirements sorted by key, matchLabels
    as `k=v`, then `k in (a,b)`, `k notin (a,b)`, `k`, `!k`."""
    if not isinstance(selector, dict):
        return ""
    reqs: list[tuple[str, str]] = [
        (str(k), f"{k}={v}") for k, v in (selector.get("matchLabels") or {}).items()
    ]
    for e in selector.get("matchExpressions") or []:
        if not isinstance(e, dict):
            continue
        key, op = str(e.get("key", "")), e.get("operator")
        values = ",".join(sorted(str(v) for v in e.get("values") or []))
        if op == "In":
            reqs.append((key, f"{key} in ({values})"))
        elif op == "NotIn":
            reqs.append((key, f"{key} notin ({values})"))
        elif op == "Exists":
            reqs.append((key, key))
        elif op == "DoesNotExist":
            reqs.append((key, f"!{key}"))
    reqs.sort(key=lambda r: r[0])
    return ",".join(text for _, text in reqs)
