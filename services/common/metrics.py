"""Prometheus metrics shared by every service, and the /metrics endpoint.

Each service process exposes its metrics on its own HTTP port so that a
scrape never competes with gRPC traffic. The gRPC metrics are defined here,
once, so all services report them under the same names and labels.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from services.common.config import parse_hostport

# Buckets from 0.5 ms to 30 s: CNI and IPAM calls are milliseconds, a
# GetPodNetwork that waits for a pod can take seconds.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip

GRPC_REQUESTS = Counter(
    "kovn_grpc_requests_total",
    "gRPC calls handled, by final status code.",
    ["service", "method", "code"],
)
GRPC_LATENCY = Histogram(
    "kovn_grpc_request_duration_seconds",
    "Time to handle a gRPC call, from the first byte to the status.",
    ["service", "method"],
    buckets=LATENCY_BUCKETS,
)
GRPC_IN_FLIGHT = Gauge(
    "kovn_grpc_requests_in_flight",
    "gRPC calls being handled now.",
    ["service"],
)
SERVING = Gauge(
    "kovn_service_serving",
    "1 while the service reports SERVING on grpc.health.v1, 0 while starting or draining.",
    ["service"],
)


def start_metrics_server(address: str) -> tuple[str, int]:
    """Serve /metrics on `address` ("host:port", port 0 = any); return the bound address."""
    host, port = parse_hostport(address, "metrics")
    httpd, _thread = start_http_server(port, addr=host)
    return host, int(httpd.server_port)
