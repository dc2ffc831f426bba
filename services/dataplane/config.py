"""Settings of the dataplane service (flags, KOVN_DATAPLANE_* env, YAML)."""

from __future__ import annotations

from dataclasses import dataclass, field
from socket import gethostname

from services.common.config import ConfigError, ServerConfig


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class DataplaneConfig(ServerConfig):
    socket: str = field(
        default="/run/kovn/dataplane.sock", metadata=_help("unix socket kovn-cni calls")
    )
    node_name: str = field(
        default_factory=gethostname, metadata=_help("this node's name in Kubernetes")
    )
    ovsdb: str = field(
        default="unix:/var/run/openvswitch/db.sock", metadata=_help("local OVSDB remote")
    )
    controller: str = field(default="", metadata=_help("controller gRPC target (host:port)"))
    controller_ca: str = field(default="", metadata=_help("PEM CA of the controller (TLS)"))
    controller_cert: str = field(default="", metadata=_help("client certificate (mTLS)"))
    controller_key: str = field(default="", metadata=_help("client key (mTLS)"))
    controller_timeout: float = field(
        default=60.0, metadata=_help("seconds to wait for a pod's network from the controller")
    )
    ovn_remote: str = field(
        default="", metadata=_help("OVN SB remote for ovn-controller (empty: leave as is)")
    )
    ovn_monitor_all: bool = field(
        default=True,
        metadata=_help("ovn-controller takes all of SB, not only this chassis' datapaths"),
    )
    encap_ip: str = field(default="", metadata=_help("tunnel IP of this node (empty: leave)"))
    encap_type: str = field(default="geneve", metadata=_help("tunnel type"))
    datapath_type: str = field(default="netdev", metadata=_help("OVS datapath type of br-int"))
    bridge: str = field(default="br-int", metadata=_help("OVN integration bridge"))
    ovn_install_timeout: float = field(
        default=10.0, metadata=_help("seconds to wait for ovn-installed before failing ADD")
    )
    max_parallel: int = field(
        default=16, metadata=_help("CNI operations doing netns work at the same time")
    )
    ovsdb_timeout: float = field(
        default=10.0, metadata=_help("seconds to wait for OVSDB at start and per transaction")
    )

    def validate(self) -> None:
        super().validate()
        if not self.socket:
            raise ConfigError("socket", self.socket, "kovn-cni needs the unix socket")
        if not self.node_name:
            raise ConfigError("node_name", self.node_name, "must not be empty")
        if not self.ovsdb:
            raise ConfigError("ovsdb", self.ovsdb, "must not be empty")
        if self.max_parallel < 1:
            raise ConfigError("max_parallel", self.max_parallel, "must be at least 1")
        for key in ("ovn_install_timeout", "controller_timeout", "ovsdb_timeout"):
            if getattr(self, key) <= 0:
                raise ConfigError(key, getattr(self, key), "must be positive")
        if self.datapath_type not in ("netdev", "system"):
            raise ConfigError("datapath_type", self.datapath_type, "netdev or system")
        if not self.bridge or len(self.bridge) > 15:
            raise ConfigError("bridge", self.bridge, "1 to 15 characters")
