"""Kubernetes label selectors, matched the way the API documents them.

A `LabelSelector` is `matchLabels` (every pair must be present) AND every
`matchExpressions` requirement (In, NotIn, Exists, DoesNotExist). An empty
selector (`{}`) matches everything; an absent one is the caller's business
(a NetworkPolicy peer without `namespaceSelector` means "the policy's own
namespace", not "every namespace"). NotIn and DoesNotExist match objects
that lack the key, as in `k8s.io/apimachinery/pkg/labels`.

Selectors are parsed once into a hashable `Selector`, so policies that name
the same selector share one peer address set (its canonical form is the key).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


class SelectorError(ValueError):
    """A selector kovn cannot evaluate (an unknown operator, values misplaced)."""


@dataclass(frozen=True, order=True)
class Requirement:
    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op == "Exists":
            return self.key in labels
        if op == "DoesNotExist":
            return self.key not in labels
        if op == "In":
            return self.key in labels and labels[self.key] in self.values
        # NotIn: an object without the key matches.
        return self.key not in labels or labels[self.key] not in self.values


@dataclass(frozen=True, order=True)
class Selector:
    """A parsed label selector; `()` requirements = matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def canonical(self) -> str:
        """A stable text form (the same selector always gives the same text)."""
        parts = []
        for r in self.requirements:
            if r.operator in ("Exists", "DoesNotExist"):
                parts.append(f"{'!' if r.operator == 'DoesNotExist' else ''}{r.key}")
            else:
                word = "in" if r.operator == "In" else "notin"
                parts.append(f"{r.key} {word} ({','.join(r.values)})")
        return ",".join(parts)


EVERYTHING = Selector()


def parse_selector(raw: Any) -> Selector:
    """`{matchLabels, matchExpressions}` → Selector; raises SelectorError."""
    if raw is None:
        return EVERYTHING
    if not isinstance(raw, dict):
        raise SelectorError(f"a label selector must be an object, not {raw!r}")
    reqs: set[Requirement] = set()
    for key, value in (raw.get("matchLabels") or {}).items():
        reqs.add(Requirement(str(key), "In", (str(value),)))
    for expr in raw.get("matchExpressions") or []:
        if not isinstance(expr, dict):
            raise SelectorError(f"a matchExpressions entry must be an object, not {expr!r}")
        key, op = expr.get("key"), expr.get("operator")
        values = tuple(sorted({str(v) for v in expr.get("values") or []}))
        if not key:
            raise SelectorError("a matchExpressions entry needs a key")
        if op not in OPERATORS:
            raise SelectorError(f"unsupported selector operator {op!r} (key {key!r})")
        if op in ("In", "NotIn") and not values:
            raise SelectorError(f"operator {op} needs values (key {key!r})")
        if op in ("Exists", "DoesNotExist") and values:
            raise SelectorError(f"operator {op} takes no values (key {key!r})")
        reqs.add(Requirement(str(key), str(op), values))
    return Selector(tuple(sorted(reqs)))
