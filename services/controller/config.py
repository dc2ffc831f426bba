"""The controller's settings (flags, KOVN_CONTROLLER_* environment, YAML)."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.common.config import ConfigError, ServerConfig, parse_hostport

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def _help(text: str) -> dict[str, Any]:
    return {"help": text}


@dataclass
class ControllerConfig(ServerConfig):
    kubeconfig: str = field(default="", metadata=_help("kubeconfig path (empty: in-cluster)"))
    ipam: str = field(default="", metadata=_help("ipam service target (unix:/path or host:port)"))
    ipam_ca: str = field(
        default="",
        metadata=_help("PEM CA for TLS to ipam (tls_cert/tls_key, if set, authenticate us)"),
    )
    nb: str = field(default="", metadata=_help("OVN NB remote, e.g. tcp:127.0.0.1:6641"))
    default_subnet: str = field(default="ovn-default", metadata=_help("name of the default subnet"))
    default_subnet_cidr: str = field(
        default="10.16.0.0/16", metadata=_help("CIDR(s) of the default subnet (comma: dual stack)")
    )
    join_subnet: str = field(default="join", metadata=_help("name of the node join subnet"))
    join_cidr: str = field(default="100.64.0.0/16", metadata=_help("CIDR(s) of the join subnet"))
    service_cidr: str = field(
        default="10.96.0.0/12",
        metadata=_help(
            "the cluster's Service ClusterIP range(s), as kube-apiserver's"
            " --service-cluster-ip-range (nodes route them through kovn0)"
        ),
    )
    mtu: int = field(default=1400, metadata=_help("pod MTU when a subnet sets none"))
    identity: str = field(default="", metadata=_help("Lease holder identity (default: hostname)"))
    advertise: str = field(
        default="",
        metadata=_help(
            "host:port followers use to reach this replica's gRPC API "
            "(default: $POD_IP or the hostname, with the listen port)"
        ),
    )
    lease_namespace: str = field(
        default="",
        metadata=_help(
            "namespace of the Lease (default: the pod's own namespace, else kube-system)"
        ),
    )
    lease_name: str = field(default="kovn-controller", metadata=_help("name of the Lease"))
    lease_duration: float = field(default=15.0, metadata=_help("Lease duration, seconds"))
    renew_deadline: float = field(
        default=10.0, metadata=_help("a leader that cannot renew this long steps down, seconds")
    )
    retry_period: float = field(default=2.0, metadata=_help("Lease renew/retry interval, seconds"))
    workers: int = field(default=64, metadata=_help("concurrent pod reconciles"))
    resync_period: float = field(
        default=300.0, metadata=_help("full NB/ipam reconcile interval as leader, seconds (0: off)")
    )
    usage_period: float = field(
        default=10.0, metadata=_help("Subnet usage refresh (status, metrics) interval, seconds")
    )
    gc_period: float = field(
        default=300.0, metadata=_help("garbage collection interval as leader, seconds (0: off)")
    )

    def validate(self) -> None:
        super().validate()
        if not self.ipam:
            raise ConfigError("ipam", self.ipam, "the ipam service target is required")
        if not self.nb:
            raise ConfigError("nb", self.nb, "the OVN NB remote is required")
        for key in ("default_subnet_cidr", "join_cidr", "service_cidr"):
            for part in getattr(self, key).split(","):
                try:
                    ipaddress.ip_network(part.strip(), strict=True)
                except ValueError as exc:
                    raise ConfigError(key, getattr(self, key), str(exc)) from None
        if self.advertise:
            parse_hostport(self.advertise, "advertise")
        if not 68 <= self.mtu <= 65535:
            raise ConfigError("mtu", self.mtu, "must be between 68 and 65535")
        if self.usage_period <= 0:
            raise ConfigError("usage_period", self.usage_period, "must be positive")
        if self.workers < 1:
            raise ConfigError("workers", self.workers, "must be at least 1")
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ConfigError(
                "renew_deadline",
                self.renew_deadline,
                "need 0 < retry_period < renew_deadline < lease_duration",
            )

    @property
    def holder_identity(self) -> str:
        return self.identity or socket.gethostname()

    @property
    def lease_ns(self) -> str:
        if self.lease_namespace:
            return self.lease_namespace
        try:
            return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "kube-system"
        except OSError:
            return "kube-system"
