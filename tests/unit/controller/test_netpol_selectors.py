"""Label selectors as the Kubernetes API documents them (pure logic)."""

from __future__ import annotations

import pytest

from services.controller.selectors import SelectorError, parse_selector


def _m(sel: dict[str, object], labels: dict[str, str]) -> bool:
    return parse_selector(sel).matches(labels)


def test_empty_selector_matches_everything() -> None:
    assert _m({}, {}) and _m({}, {"a": "b"})
    assert parse_selector({}).empty and parse_selector(None).empty


def test_match_labels_needs_every_pair() -> None:
    sel = {"matchLabels": {"app": "web", "tier": "fe"}}
    assert _m(sel, {"app": "web", "tier": "fe", "x": "y"})
    assert not _m(sel, {"app": "web"})
    assert not _m(sel, {"app": "web", "tier": "be"})


@pytest.mark.parametrize(
    ("op", "values", "labels", "want"),
    [
        ("In", ["a", "b"], {"k": "a"}, True),
        ("In", ["a", "b"], {"k": "c"}, False),
        ("In", ["a"], {}, False),
        ("NotIn", ["a"], {"k": "b"}, True),
        ("NotIn", ["a"], {"k": "a"}, False),
        ("NotIn", ["a"], {}, True),  # no key: NotIn holds
        ("Exists", [], {"k": ""}, True),
        ("Exists", [], {}, False),
        ("DoesNotExist", [], {}, True),
        ("DoesNotExist", [], {"k": "x"}, False),
    ],
)
def test_expressions(op: str, values: list[str], labels: dict[str, str], want: bool) -> None:
    expr: dict[str, object] = {"key": "k", "operator": op}
    if values:
        expr["values"] = values
    assert _m({"matchExpressions": [expr]}, labels) is want


def test_labels_and_expressions_are_anded() -> None:
    sel = {
        "matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}],
    }
    assert _m(sel, {"app": "web", "env": "dev"})
    assert not _m(sel, {"app": "web", "env": "prod"})
    assert not _m(sel, {"env": "dev"})


def test_same_selector_same_canonical_form() -> None:
    a = parse_selector({"matchLabels": {"x": "1", "y": "2"}})
    b = parse_selector(
        {"matchExpressions": [{"key": "y", "operator": "In", "values": ["2"]}],
         "matchLabels": {"x": "1"}}
    )  # fmt: skip
    assert a == b and a.canonical() == b.canonical() == "x in (1),y in (2)"
    assert parse_selector({"matchExpressions": [{"key": "k", "operator": "In",
                                                 "values": ["b", "a"]}]}).canonical() == (
        "k in (a,b)"
    )  # fmt: skip


@pytest.mark.parametrize(
    "expr",
    [
        {"key": "k", "operator": "Gt", "values": ["1"]},
        {"key": "k", "operator": "In"},
        {"key": "k", "operator": "Exists", "values": ["a"]},
        {"operator": "Exists"},
    ],
)
def test_bad_expressions_are_refused(expr: dict[str, object]) -> None:
    with pytest.raises(SelectorError):
        parse_selector({"matchExpressions": [expr]})
