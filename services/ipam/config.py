"""Settings of the ipam service (on top of every service's ServerConfig).

The cool-down default of 30 s outlasts what it protects against: a kubelet
retrying a slow CNI DEL (its sync period is 10 s), ARP/ND caches on peers
(tens of seconds at most once a neighbour stops answering) and packets still
in flight. It costs nothing but a few addresses held back per minute of pod
churn; a subnet too tight for that is already too tight.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.common.config import ConfigError, ServerConfig, parse_hostport


@dataclass
class IpamConfig(ServerConfig):
    store: str = field(
        default="sqlite",
        metadata={"help": "where allocations live", "choices": ("sqlite", "etcd")},
    )
    sqlite_path: str = field(
        default="/var/lib/kovn/ipam.db", metadata={"help": "SQLite database file (store=sqlite)"}
    )
    etcd_endpoints: list[str] = field(
        default_factory=list, metadata={"help": "etcd host:port endpoints (store=etcd)"}
    )
    etcd_prefix: str = field(
        default="/kovn/ipam", metadata={"help": "key prefix of this ipam's data in etcd"}
    )
    cooldown_seconds: float = field(
        default=30.0,
        metadata={"help": "seconds a released address is held back from new owners"},
    )

    def validate(self) -> None:
        super().validate()
        if self.store == "sqlite" and not self.sqlite_path:
            raise ConfigError("sqlite_path", self.sqlite_path, "required when store=sqlite")
        if self.store == "etcd":
            if not self.etcd_endpoints:
                raise ConfigError("etcd_endpoints", "", "required when store=etcd")
            for endpoint in self.etcd_endpoints:
                parse_hostport(endpoint.removeprefix("http://"), "etcd_endpoints")
            if not self.etcd_prefix.startswith("/") or self.etcd_prefix.endswith("/"):
                raise ConfigError(
                    "etcd_prefix", self.etcd_prefix, "must start with '/' and not end with '/'"
                )
        if self.cooldown_seconds < 0:
            raise ConfigError("cooldown_seconds", self.cooldown_seconds, "must not be negative")
