"""Prometheus metrics of the embedded API server (served at /metrics).

Per-instance registry, so several servers in one test process do not
collide. Request counts and latencies are what tell whether the API server
or the controller is the bottleneck in a 10k-pod run.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .store import Store

_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


class Metrics:
    def __init__(self, store: Store) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "kovn_kubeapi_requests_total",
            "API requests served, by verb and HTTP code.",
            ["verb", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "kovn_kubeapi_request_duration_seconds",
            "Time to answer an API request (for watches: the whole stream).",
            ["verb"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 60),
            registry=self.registry,
        )
        rv = Gauge(
            "kovn_kubeapi_resource_version",
            "The newest resourceVersion issued.",
            registry=self.registry,
        )
        rv.set_function(lambda: store.rv)
        objects = Gauge(
            "kovn_kubeapi_objects", "Objects stored, all kinds.", registry=self.registry
        )
        objects.set_function(lambda: sum(len(v) for v in store.objects.values()))
        watches = Gauge("kovn_kubeapi_watches", "Open watch streams.", registry=self.registry)
        watches.set_function(store.watch_count)

    def observe(self, request: web.Request, code: int, seconds: float) -> None:
        verb = _VERBS.get(request.method, "get")
        if request.method == "GET" and (
            request.query.get("watch") in ("1", "true", "True") or "/watch/" in request.path
        ):
            verb = "watch"
        self.requests.labels(verb, str(code)).inc()
        self.latency.labels(verb).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
