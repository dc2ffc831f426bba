"""The NetworkPolicy kind, and the shared peer address sets it fans out to.

A policy is one port group (the pods it selects, by logical port), its ACLs
(`topology.policy`), and references to peer address sets: one per distinct
peer selector, shared by every policy naming it and owned by the peer
(`names.netpol_peer_owner`), so a pod relabelled costs one address-set write
however many policies name that peer. Peer sets are written by the
`netpolpeer` kind (a queue keyed by peer) and, for a policy that starts
naming a peer, by the policy's own worker before its ACLs; both go through
one lock per peer, and each write recomputes from the current state, so an
add and a remove can never reorder into a stale set. A set is removed when
the last policy naming it has rewritten its ACLs without it.

Fan-out without polling: this kind observes the pods and namespaces
informers (labels, named ports) and follows the Pod kind's reconciles (a
pod's address exists once the Pod kind allocated it, before the pod runs,
so a policy applies before the pod serves). A change re-reconciles only the
policies whose selection (or named-port resolution) it changes and the
peer sets whose membership it changes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

import structlog

from services.common.kube import Obj
from services.controller import metrics
from services.controller.context import Context, nic_key
from services.controller.events import object_ref
from services.controller.informer import trim_meta
from services.controller.kind import Kind, Watch
from services.controller.nb.rows import DesiredRow
from services.controller.topology import names
from services.controller.topology.policy import (
    EGRESS,
    INGRESS,
    LogSpec,
    Peer,
    PeerSelector,
    PodInfo,
    Policy,
    meter_rows,
    parse_policy,
    peer_set_rows,
    policy_rows,
)

log = structlog.get_logger(__name__)

#: On a policy or its namespace: log the policy's drops (OVN ACL logging).
ENFORCEMENT_LOG = "kovn.io/enforcement-log"


def trim_policy(obj: Obj) -> Obj:
    meta = obj.get("metadata") or {}
    ann = meta.get("annotations") or {}
    return {
        "metadata": trim_meta(
            meta, annotations={k: v for k, v in ann.items() if k == ENFORCEMENT_LOG}
        ),
        "spec": obj.get("spec") or {},
    }


def _labels(obj: Obj | None) -> dict[str, str]:
    if obj is None:
        return {}
    return dict((obj.get("metadata") or {}).get("labels") or {})


def _shape(info: PodInfo | None) -> tuple[Any, ...]:
    if info is None:
        return ()
    return (info.port, info.ips, tuple(sorted(info.labels.items())), info.named)


class NetworkPolicies(Kind):
    name = "networkpolicy"
    watch = Watch(
        "networkpolicies", "networking.k8s.io", "v1", "networkpolicies", transform=trim_policy
    )
    observes = ("pods", "namespaces", "networkpolicies")
    follows = ("pod",)
    workers = 4

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.policies: dict[str, Policy] = {}
        self.by_ns: dict[str, set[str]] = {}
        #: Peer selectors in use, by key, and the policies naming each.
        self.peer_specs: dict[str, PeerSelector] = {}
        self.peer_refs: dict[str, set[str]] = {}
        #: The peers each policy's written ACLs reference.
        self.written_peers: dict[str, set[str]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        #: Pods with an address and a port, and each namespace's pods.
        self.pods: dict[str, PodInfo] = {}
        self.ns_pods: dict[str, set[str]] = {}
        self.changed_at: dict[str, float] = {}
        self.programmed: set[str] = set()

    # -- the pod index --------------------------------------------------------------

    def _pod_info(self, key: str, need_port: bool = True) -> PodInfo | None:
        ctx = self.ctx
        pod = ctx.informers["pods"].get(key)
        if pod is None or pod["spec"].get("hostNetwork"):
            return None
        meta = pod["metadata"]
        ns, name = meta["namespace"], meta["name"]
        alloc = ctx.allocations.get(nic_key(ns, name))
        if alloc is None or not alloc.addresses:
            return None
        if need_port and not ctx.sync.known(names.pod_owner(ns, name)):
            return None  # its port is not written yet: the Pod kind's reconcile will tell
        named = tuple(sorted(tuple(p) for p in pod["spec"].get("namedPorts") or ()))
        return PodInfo(
            ns,
            name,
            names.pod_port_name(ns, name),
            tuple(sorted(a.ip for a in alloc.addresses)),
            dict(meta.get("labels") or {}),
            named,
        )

    def _index(self, key: str, info: PodInfo | None) -> None:
        ns = key.split("/", 1)[0]
        if info is None:
            self.pods.pop(key, None)
            members = self.ns_pods.get(ns)
            if members is not None:
                members.discard(key)
                if not members:
                    del self.ns_pods[ns]
        else:
            self.pods[key] = info
            self.ns_pods.setdefault(ns, set()).add(key)

    def _ns_labels(self, ns: str) -> dict[str, str]:
        return _labels(self.ctx.informers["namespaces"].get(ns))

    def _pod_changed(self, key: str) -> None:
        old = self.pods.get(key)
        new = self._pod_info(key)
        if _shape(old) == _shape(new):
            return
        self._index(key, new)
        ns = key.split("/", 1)[0]
        ns_labels = self._ns_labels(ns)
        queues = self.ctx.queues
        port_changed = old is None or new is None or old.port != new.port
        for pkey in self.by_ns.get(ns, ()):
            pol = self.policies[pkey]
            was = old is not None and pol.pods.matches(old.labels)
            now = new is not None and pol.pods.matches(new.labels)
            if was != now or (
                (was or now)
                and (port_changed or (pol.named_ports(INGRESS) and old.named != new.named))  # type: ignore[union-attr]
            ):
                queues.enqueue(self.name, pkey)
        for peer_key, peer in self.peer_specs.items():
            was = old is not None and peer.matches(ns, old.labels, ns_labels)
            now = new is not None and peer.matches(ns, new.labels, ns_labels)
            if was != now or (now and old is not None and new is not None and old.ips != new.ips):
                queues.enqueue(PEERS, peer_key)
            if was or now:
                self._egress_named(self.peer_refs.get(peer_key, ()))
        # Egress named ports towards every pod (`to` absent) resolve over all pods.
        self._egress_named(
            k
            for k, p in self.policies.items()
            if any(r.peers is None and _named(r.ports) for r in p.egress or ())
        )

    def _egress_named(self, policies: Iterable[str]) -> None:
        for pkey in policies:
            pol = self.policies.get(pkey)
            if pol is not None and pol.named_ports(EGRESS):
                self.ctx.queues.enqueue(self.name, pkey)

    # -- hooks ------------------------------------------------------------------------

    def observe(
        self, informer: str, etype: str, key: str, old: Obj | None, new: Obj | None
    ) -> None:
        if informer == "pods":
            self._pod_changed(key)
        elif informer == "namespaces":
            self._namespace_changed(key, old, new)
        else:
            self.changed_at.setdefault(key, time.monotonic())

    def reconciled(self, kind: str, key: Hashable) -> None:
        self._pod_changed(str(key))

    def _namespace_changed(self, ns: str, old: Obj | None, new: Obj | None) -> None:
        was, now = _labels(old), _labels(new)
        if was != now:
            for peer_key, peer in self.peer_specs.items():
                if peer.namespaces is None:
                    continue
                if peer.namespaces.matches(was) != peer.namespaces.matches(now):
                    self.ctx.queues.enqueue(PEERS, peer_key)
                    self._egress_named(self.peer_refs.get(peer_key, ()))
        if _log_on(old) != _log_on(new):
            for pkey in self.by_ns.get(ns, ()):
                self.ctx.queues.enqueue(self.name, pkey)

    # -- peers --------------------------------------------------------------------------

    def _peer_pods(self, peer: PeerSelector) -> list[PodInfo]:
        if peer.namespaces is None:
            namespaces: Iterable[str] = (peer.namespace,)
        else:
            sel = peer.namespaces
            cache = self.ctx.informers["namespaces"].cache
            namespaces = [ns for ns in self.ns_pods if sel.matches(_labels(cache.get(ns)))]
        found = []
        for ns in namespaces:
            for key in self.ns_pods.get(ns, ()):
                info = self.pods[key]
                if peer.pods.matches(info.labels):
                    found.append(info)
        return found

    def _rule_pods(self, peers: tuple[Peer, ...] | None) -> Sequence[PodInfo]:
        if peers is None:
            return list(self.pods.values())
        found: dict[str, PodInfo] = {}
        for p in peers:
            if isinstance(p, PeerSelector):
                for info in self._peer_pods(p):
                    found[info.port] = info
        return list(found.values())

    def _peer_rows(self, peer_key: str) -> list[DesiredRow]:
        spec = self.peer_specs[peer_key]
        return peer_set_rows(peer_key, [ip for p in self._peer_pods(spec) for ip in p.ips])

    async def refresh_peer(self, peer_key: str) -> None:
        """Write (or remove, once unreferenced) a peer's address sets."""
        lock = self._locks.setdefault(peer_key, asyncio.Lock())
        async with lock:
            owner = names.netpol_peer_owner(peer_key)
            if not self.peer_refs.get(peer_key):
                self.peer_refs.pop(peer_key, None)
                self.peer_specs.pop(peer_key, None)
                await self.ctx.sync.remove(owner)
                return
            await self.ctx.sync.sync(owner, self._peer_rows(peer_key))

    # -- policies -------------------------------------------------------------------------

    def _log(self, policy: Policy) -> LogSpec | None:
        obj = self.ctx.informers["networkpolicies"].get(f"{policy.namespace}/{policy.name}")
        ns = self.ctx.informers["namespaces"].get(policy.namespace)
        return LogSpec() if _log_on(obj) or _log_on(ns) else None

    def rows(self, policy: Policy) -> list[DesiredRow]:
        pods = self.ns_pods.get(policy.namespace, ())
        selected = [i for k in pods if policy.pods.matches((i := self.pods[k]).labels)]
        join = self.ctx.subnets.get(self.ctx.config.join_subnet)
        joins = list(join.cidr_strings) if join is not None else []
        return policy_rows(policy, selected, self._rule_pods, joins, self._log(policy))

    def _adopt(self, key: str, policy: Policy | None) -> None:
        """Index a policy (None: forget it) and its peers' references."""
        old = self.policies.pop(key, None)
        if old is not None:
            self.by_ns.get(old.namespace, set()).discard(key)
        if policy is None:
            return
        self.policies[key] = policy
        self.by_ns.setdefault(policy.namespace, set()).add(key)
        for peer in policy.peers():
            self.peer_specs.setdefault(peer.key, peer)
            self.peer_refs.setdefault(peer.key, set()).add(key)

    async def reconcile(self, key: Hashable) -> None:
        key = str(key)
        namespace, name = key.split("/", 1)
        owner = names.netpol_owner(namespace, name)
        obj = self.ctx.informers["networkpolicies"].get(key)
        policy = parse_policy(obj) if obj is not None else None
        before = self.written_peers.get(key, set())
        self._adopt(key, policy)
        now = {p.key for p in policy.peers()} if policy is not None else set()
        for peer_key in sorted(now):
            await self.refresh_peer(peer_key)  # the sets exist before ACLs name them
        if policy is None:
            await self.ctx.sync.remove(owner)
            self.programmed.discard(key)
        else:
            rows = self.rows(policy)
            if self._log(policy) is not None:  # the meter its logged drops name
                await self.ctx.sync.sync(names.netpol_meter_owner(), meter_rows())
            await self.ctx.sync.sync(owner, rows)
            self.programmed.add(key)
        changed_at = self.changed_at.pop(key, None)
        if changed_at is not None:
            metrics.NETPOL_TO_NB_SECONDS.observe(time.monotonic() - changed_at)
        metrics.NETPOL_POLICIES.set(len(self.programmed))
        if now:
            self.written_peers[key] = now
        else:
            self.written_peers.pop(key, None)
        for peer_key in sorted(before - now):
            refs = self.peer_refs.get(peer_key)
            if refs is not None:
                refs.discard(key)
            await self.refresh_peer(peer_key)
        if policy is not None and policy.problems and obj is not None:
            await self.ctx.events.warning(
                object_ref("NetworkPolicy", "networking.k8s.io/v1", obj),
                "NetworkPolicyNotFullyEnforced",
                "kovn cannot enforce " + "; ".join(policy.problems),
            )

    def desired_rows(self) -> Iterable[DesiredRow]:
        """Every policy's rows and its peers' sets; rebuilds the indexes on the way."""
        self.pods.clear()
        self.ns_pods.clear()
        for key in list(self.ctx.informers["pods"].cache):
            self._index(key, self._pod_info(key, need_port=False))
        self.policies.clear()
        self.by_ns.clear()
        self.peer_specs.clear()
        self.peer_refs.clear()
        self.written_peers.clear()
        self.programmed.clear()
        rows: list[DesiredRow] = []
        for key, obj in list(self.ctx.informers["networkpolicies"].cache.items()):
            policy = parse_policy(obj)
            self._adopt(key, policy)
            rows.extend(self.rows(policy))
            self.programmed.add(key)
            if peers := {p.key for p in policy.peers()}:
                self.written_peers[key] = peers
        for peer_key in self.peer_specs:
            rows.extend(self._peer_rows(peer_key))
        if any(self._log(p) is not None for p in self.policies.values()):
            rows.extend(meter_rows())
        metrics.NETPOL_POLICIES.set(len(self.programmed))
        return rows


class NetworkPolicyPeers(Kind):
    """The shared peer address sets, one worker per peer selector."""

    name = "netpolpeer"
    workers = 4

    async def reconcile(self, key: Hashable) -> None:
        policies = self.ctx.kinds["networkpolicy"]
        assert isinstance(policies, NetworkPolicies)
        await policies.refresh_peer(str(key))

    def all_keys(self) -> Iterable[Hashable]:
        return ()


PEERS = NetworkPolicyPeers.name


def _named(ports: Iterable[Any]) -> bool:
    return any(isinstance(p.port, str) for p in ports)


def _log_on(obj: Obj | None) -> bool:
    if obj is None:
        return False
    ann = (obj.get("metadata") or {}).get("annotations") or {}
    return str(ann.get(ENFORCEMENT_LOG, "")).lower() == "true"
