"""Parsing and interval arithmetic behind subnets, exclusions and pools."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.errors import InvalidArgument
from services.ipam import addresses as A

intervals = st.lists(
    st.tuples(st.integers(0, 200), st.integers(0, 30)).map(lambda t: (t[0], t[0] + t[1])),
    max_size=8,
).map(A.normalise)


def members(iv: list[A.Interval]) -> set[int]:
    return {n for lo, hi in iv for n in range(lo, hi + 1)}


@given(intervals, intervals)
def test_interval_algebra_matches_sets(a: list[A.Interval], b: list[A.Interval]) -> None:
    assert members(A.subtract(a, b)) == members(a) - members(b)
    assert members(A.intersect(a, b)) == members(a) & members(b)
    assert A.size(a) == len(members(a))
    starts = [lo for lo, _ in a]
    for n in range(0, 240, 7):
        assert A.contains(a, starts, n) == (n in members(a))
    merged = A.normalise([*a, *b])
    assert all(merged[i][1] + 1 < merged[i + 1][0] for i in range(len(merged) - 1))


def test_parse_ranges_accepts_ip_range_and_cidr() -> None:
    got = A.parse_ranges(["10.0.0.5", "10.0.0.6-10.0.0.9", "10.0.1.0/30", "fd00::1"], "f")

    def ip(text: str) -> int:
        return int(A.parse_ip(text, "f"))

    assert got[4] == [(ip("10.0.0.5"), ip("10.0.0.9")), (ip("10.0.1.0"), ip("10.0.1.3"))]
    assert len(got[6]) == 1


@pytest.mark.parametrize(
    ("value", "word"),
    [("10.0.0.9-10.0.0.1", "after its end"), ("10.0.0.1-fd00::1", "mixes"),
     ("10.0.0.1/24", "not a valid CIDR"), ("x", "not a valid IP")],
)  # fmt: skip
def test_parse_ranges_refuses(value: str, word: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        A.parse_ranges([value], "subnet.excludes")
    assert info.value.field == "subnet.excludes" and word in str(info.value)


@pytest.mark.parametrize(
    ("value", "word"),
    [("01:00:5e:00:00:01", "multicast"), ("00:00:00:00:00:00", "zero"),
     ("0a:58:0a", "not a MAC"), ("zz:58:0a:00:00:01", "not a MAC")],
)  # fmt: skip
def test_bad_macs(value: str, word: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        A.parse_mac(value, "mac")
    assert info.value.field == "mac" and word in str(info.value)


def test_random_macs_are_local_unicast() -> None:
    rng = random.Random(7)
    for _ in range(1000):
        mac = A.random_mac(rng)
        first = int(mac[:2], 16)
        assert first & 2 and not first & 1
        assert A.parse_mac(mac, "mac") == mac


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**128 - 1))
def test_stored_ip_reads_back_what_ip_text_writes(v4: int, v6: int) -> None:
    assert A.stored_ip(A.ip_text(4, v4)) == (4, v4)
    assert A.stored_ip(A.ip_text(6, v6)) == (6, v6)
