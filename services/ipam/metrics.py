"""The ipam service's Prometheus metrics, in one place.

Allocation latency, store conflicts and releases are counted where they
happen; the address gauges are computed at scrape time from every live
core's allocator, so that no code path pays for keeping them current.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Protocol

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from services.common.errors import NotFound
from services.common.metrics import LATENCY_BUCKETS
from services.ipam.addresses import FAMILY_NAME
from services.ipam.allocator import Allocator

ALLOCATE_SECONDS = Histogram(
    "kovn_ipam_allocation_duration_seconds",
    "Time to allocate addresses for a new owner, store commit included.",
    ["store"],
    buckets=LATENCY_BUCKETS,
)
CONFLICTS = Counter(
    "kovn_ipam_allocation_conflicts_total",
    "Allocations retried because the store refused a stale choice.",
    ["store", "reason"],
)
RELEASED = Counter("kovn_ipam_releases_total", "Allocations released.", ["store", "cause"])


class HasAllocator(Protocol):
    @property
    def alloc(self) -> Allocator: ...


_CORES: weakref.WeakSet[HasAllocator] = weakref.WeakSet()


def track(core: HasAllocator) -> None:
    """Count `core`'s addresses in kovn_ipam_addresses for as long as it lives."""
    _CORES.add(core)


class _AddressCollector(Collector):
    """kovn_ipam_addresses{subnet,family,state}, computed at scrape time."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "kovn_ipam_addresses",
            "Addresses per subnet, family and state (used, free, excluded, cooling, pooled).",
            labels=["subnet", "family", "state"],
        )
        # Runs on the metrics server's thread: read only, never expire or
        # otherwise change the allocator under the event loop's feet.
        for core in list(_CORES):
            alloc = core.alloc
            for name in list(alloc.subnets):
                try:
                    usages = alloc.usage(name, None)
                except NotFound:  # deleted meanwhile
                    continue
                for u in usages:
                    fam = FAMILY_NAME[u.family]
                    for state in ("used", "free", "excluded", "cooling", "pooled"):
                        gauge.add_metric([u.subnet, fam, state], float(getattr(u, state)))
        yield gauge


REGISTRY.register(_AddressCollector())
