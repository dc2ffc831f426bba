"""Prometheus metrics of the dataplane (prefix kovn_, base units)."""

from __future__ import annotations

from prometheus_client import Gauge, Histogram

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

CNI_DURATION = Histogram(
    "kovn_cni_request_duration_seconds",
    "CNI calls served by the dataplane, by command and result (ok or the CNI code)",
    ["command", "result"],
    buckets=_BUCKETS,
)
CNI_IN_FLIGHT = Gauge("kovn_cni_requests_in_flight", "CNI calls being served now")
OVN_INSTALLED_WAIT = Histogram(
    "kovn_cni_ovn_installed_wait_seconds",
    "Time from plugging a port to ovn-controller reporting ovn-installed",
    buckets=_BUCKETS,
)
