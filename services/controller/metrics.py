"""Prometheus metrics of the controller, defined once so modules share them."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILE_SECONDS = Histogram(
    "kovn_controller_reconcile_duration_seconds",
    "Time to reconcile one object, by kind and outcome.",
    ["kind", "outcome"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
QUEUE_DEPTH = Gauge(
    "kovn_controller_queue_depth",
    "Objects queued, being reconciled or waiting for a retry, by kind.",
    ["kind"],
)
NB_TXN_SECONDS = Histogram(
    "kovn_controller_nb_transaction_duration_seconds",
    "Time to commit one NB transaction.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
NB_TXN_ROWS = Histogram(
    "kovn_controller_nb_transaction_rows",
    "Rows asked for (ensured or removed) per NB transaction.",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
)
NB_ROWS_WRITTEN = Counter(
    "kovn_controller_nb_rows_written_total",
    "NB rows actually created, changed or removed.",
)
SUBNET_ADDRESSES = Gauge(
    "kovn_controller_subnet_addresses",
    "Addresses per subnet and family as last reported by ipam.",
    ["subnet", "family", "state"],
)
IS_LEADER = Gauge("kovn_controller_leader", "1 while this replica holds the Lease.")
KUBE_WRITES = Counter(
    "kovn_controller_kube_writes_total",
    "Writes to the Kubernetes API (annotation and status patches), by kind.",
    ["kind"],
)
TAKEOVER_SECONDS = Gauge(
    "kovn_controller_takeover_seconds",
    "Time from winning the Lease until every known object was reconciled once.",
)
SERVICES = Gauge("kovn_services", "Services kovn programs as OVN load balancers.")
LB_BACKENDS = Gauge(
    "kovn_lb_backends",
    "Backends (endpoint ip:port) across a Service's VIPs, as programmed in the NB.",
    ["namespace", "service"],
)
SLICE_TO_NB_SECONDS = Histogram(
    "kovn_endpointslice_to_nb_seconds",
    "From an EndpointSlice change seen by the controller to its Service's load"
    " balancers committed in the NB.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
NETPOL_POLICIES = Gauge(
    "kovn_netpol_policies", "NetworkPolicies kovn enforces as OVN port groups and ACLs."
)
NETPOL_TO_NB_SECONDS = Histogram(
    "kovn_netpol_to_nb_seconds",
    "From a NetworkPolicy change seen by the controller to its ACLs committed in the NB.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
