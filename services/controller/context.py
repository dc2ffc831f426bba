"""The state the controller's reconcilers share.

One object, built once by the service, so that each reconciler module
receives what it needs explicitly instead of reaching into globals: the
Kubernetes caches, the ipam and NB clients, the subnets that passed
validation, the allocations ipam gave, and the boards waiters block on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from services.api.ipam.v1 import ipam_pb2
from services.common.kube import KubeClient
from services.controller.board import Board
from services.controller.config import ControllerConfig
from services.controller.events import EventRecorder
from services.controller.informer import Informer
from services.controller.ipam_client import IpamClient
from services.controller.nb.client import NbClient
from services.controller.nb.sync import NbSync
from services.controller.subnet_spec import PoolSpec, SubnetSpec

if TYPE_CHECKING:
    from services.controller.kind import Kind


@dataclass(frozen=True)
class NicNetwork:
    """Everything the dataplane needs for one pod NIC (or a node's kovn0)."""

    namespace: str
    name: str
    uid: str
    nic: str
    logical_port: str
    logical_switch: str
    mac: str
    mtu: int
    #: "10.16.0.5/16" style, one per family.
    addresses: tuple[str, ...]
    gateways: tuple[str, ...]
    node: str
    #: (destination CIDR, gateway or "" for on-link): exactly what the NIC gets.
    routes: tuple[tuple[str, str], ...] = ()
    ingress_bps: int = 0
    egress_bps: int = 0


class Queues(Protocol):
    """The registry's fan-out, as the kinds see it (see `kind.py`)."""

    def enqueue(self, kind: str, key: Hashable) -> None: ...

    def changed(self, kind: str, key: Hashable) -> None: ...


class _NoQueues:
    """Until the registry exists (and in tests of a lone reconciler)."""

    def enqueue(self, kind: str, key: Hashable) -> None:
        pass

    def changed(self, kind: str, key: Hashable) -> None:
        pass


@dataclass
class Context:
    config: ControllerConfig
    kube: KubeClient
    ipam: IpamClient
    nb: NbClient
    sync: NbSync
    #: By informer name ("pods", "nodes", "namespaces", "subnets", "ippools").
    informers: dict[str, Informer]
    events: EventRecorder
    #: Valid subnets by name, including the default and join subnets.
    subnets: dict[str, SubnetSpec] = field(default_factory=dict)
    #: Why a Subnet is not usable, by name.
    subnet_errors: dict[str, str] = field(default_factory=dict)
    pools: dict[str, PoolSpec] = field(default_factory=dict)
    #: Why an IPPool is not usable, by name.
    pool_errors: dict[str, str] = field(default_factory=dict)
    #: Pod NIC allocations by "namespace/pod/nic".
    allocations: dict[str, ipam_pb2.Allocation] = field(default_factory=dict)
    #: NICs with an allocation, by "namespace/pod" (to clean up every NIC).
    pod_nics: dict[str, set[str]] = field(default_factory=dict)
    #: Node join allocations by node name.
    node_allocations: dict[str, ipam_pb2.Allocation] = field(default_factory=dict)
    pod_board: Board[NicNetwork] = field(default_factory=Board)
    node_board: Board[NicNetwork] = field(default_factory=Board)
    #: Pods whose request failed permanently; retried when subnets/pools change.
    failed_pods: set[str] = field(default_factory=set)
    #: Egress sources per node: node -> {nic key: IPs} (distributed gateway
    #: subnets only), and each NIC's node, for the node egress reconciler.
    node_pods: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    pod_node: dict[str, str] = field(default_factory=dict)
    #: Set when pod addresses were allocated or released: Subnet usage is stale.
    usage_changed: asyncio.Event = field(default_factory=asyncio.Event)
    queues: Queues = field(default_factory=_NoQueues)
    #: Every kind by name (set by the registry), for kinds that work as a pair.
    kinds: dict[str, Kind] = field(default_factory=dict)

    def index_pod(self, nkey: str, node: str, ips: tuple[str, ...]) -> None:
        """Record (or with node "" forget) where a NIC's egress leaves from."""
        old = self.pod_node.get(nkey)
        if old is not None and (old != node or not ips):
            self.node_pods.get(old, {}).pop(nkey, None)
            self.pod_node.pop(nkey, None)
            self.queues.enqueue("egress", old)
        if node and ips and self.node_pods.setdefault(node, {}).get(nkey) != ips:
            self.node_pods[node][nkey] = ips
            self.pod_node[nkey] = node
            self.queues.enqueue("egress", node)

    def internal_cidrs(self) -> list[str]:
        """Every CIDR inside the cluster (pod subnets and join)."""
        return [c for s in self.subnets.values() for c in s.cidr_strings]

    @property
    def default_subnet(self) -> SubnetSpec:
        for spec in self.subnets.values():
            if spec.default and not spec.internal and not spec.provider:
                return spec
        return self.subnets[self.config.default_subnet]

    @property
    def join(self) -> SubnetSpec:
        return self.subnets[self.config.join_subnet]

    def pod_subnets(self) -> list[SubnetSpec]:
        return [s for s in self.subnets.values() if not s.internal]


def nic_key(namespace: str, pod: str, nic: str = "eth0") -> str:
    return f"{namespace}/{pod}/{nic or 'eth0'}"
