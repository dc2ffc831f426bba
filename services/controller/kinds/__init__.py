"""Every kind of intent the controller reconciles, one module each.

`KINDS` is the registry's list, in the order that matters twice: take-over
reconciles the `first` kinds in this order (subnets before pools), and a
full resync collects desired rows in this order (pods rebuild the per-node
egress index that egress then reads). Adding a kind is adding its module
and its class here.
"""

from __future__ import annotations

from services.controller.kind import Kind
from services.controller.kinds.egress import Egress
from services.controller.kinds.ippools import IPPools
from services.controller.kinds.namespaces import Namespaces
from services.controller.kinds.networkpolicy import NetworkPolicies, NetworkPolicyPeers
from services.controller.kinds.nodes import Nodes
from services.controller.kinds.pods import Pods
from services.controller.kinds.services import EndpointSlices, Services
from services.controller.kinds.subnets import Subnets

KINDS: tuple[type[Kind], ...] = (
    Subnets,
    IPPools,
    Namespaces,
    Nodes,
    Pods,
    Egress,
    # Slices first: their prepare() indexes them before Services' rows are read.
    EndpointSlices,
    Services,
    # After Pods: their addresses and ports are what policies select.
    NetworkPolicies,
    NetworkPolicyPeers,
)
