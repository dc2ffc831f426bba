"""The Pod kind: a bound pod gets an address, a logical port, annotations.

Runs for one pod at a time (the work queue guarantees it) against the
pod's *current* cached state. What each NIC asks for and gets is decided by
`nic_intent`; this module allocates in ipam (honouring fixed IP/MAC and
pools, idempotent per owner, so a retry or a new leader gets the same
answer), syncs the NIC's port, patches the result onto the pod and posts it
to the board GetPodNetwork waits on. A request that can never succeed is
posted as the pod's error (and an Event), so the CNI ADD fails with that
message instead of timing out.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

import structlog

from services.api.ipam.v1 import ipam_pb2
from services.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    KovnError,
    NotFound,
    ResourceExhausted,
)
from services.common.kube import KubeError, Obj, resource_path
from services.controller import annotations as ann
from services.controller import metrics
from services.controller.attachments import NETWORKS, Attachment, parse_networks
from services.controller.context import Context, nic_key
from services.controller.events import pod_ref
from services.controller.informer import trim_pod
from services.controller.ipam_client import owner
from services.controller.kind import FanIn, Kind, Watch
from services.controller.nb.rows import DesiredRow
from services.controller.nic_intent import PRIMARY_NIC as NIC
from services.controller.nic_intent import NicIntents, NicRequest
from services.controller.topology import names
from services.controller.topology.ports import NicAddress, pod_port_row

log = structlog.get_logger(__name__)

PODS = Watch("pods", "", "v1", "pods", transform=trim_pod)


def _signature(pod: Obj | None) -> tuple[Any, ...]:
    """What a pod change must touch to matter to the controller."""
    if pod is None:
        return ()
    meta, spec = pod["metadata"], pod["spec"]
    kovn = tuple(
        sorted(
            (k, v)
            for k, v in (meta.get("annotations") or {}).items()
            if k.startswith((ann.PREFIX, ann.ALIAS_PREFIX))
        )
    )
    return (
        meta.get("uid"),
        spec.get("nodeName"),
        spec.get("hostNetwork"),
        meta.get("deletionTimestamp"),
        kovn,
    )


class Pods(Kind):
    name = "pod"
    watch = PODS

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.workers = ctx.config.workers
        self.intents = NicIntents(ctx)

    def wants(self, etype: str, key: str, old: Obj | None, new: Obj | None) -> bool:
        return _signature(old) != _signature(new)

    def fan_in(self) -> dict[str, FanIn]:
        # A pod whose request failed may be placeable once subnets, pools or
        # namespace bindings change.
        failed: FanIn = lambda key: list(self.ctx.failed_pods)  # noqa: E731
        return {"subnet": failed, "ippool": failed, "namespace": failed}

    def desired_rows(self) -> Iterable[DesiredRow]:
        """Every pod NIC's port; rebuilds the per-node egress index on the way."""
        ctx = self.ctx
        ctx.node_pods.clear()
        ctx.pod_node.clear()
        for key, alloc in ctx.allocations.items():
            o = alloc.owner
            pod = ctx.informers["pods"].get(f"{o.namespace}/{o.pod}")
            if pod is None or o.network not in ctx.subnets:
                continue
            spec = pod["spec"]
            if spec.get("hostNetwork") or not spec.get("nodeName"):
                continue
            addr = NicAddress(alloc.mac, tuple(a.address for a in alloc.addresses))
            yield pod_port_row(o.namespace, o.pod, o.nic, o.network, addr, spec["nodeName"])
            if o.nic in ("", NIC) and ctx.subnets[o.network].gateway_type == "distributed":
                ips = tuple(a.ip for a in alloc.addresses)
                ctx.node_pods.setdefault(spec["nodeName"], {})[key] = ips
                ctx.pod_node[key] = spec["nodeName"]

    async def reconcile(self, key: Hashable) -> None:
        ctx = self.ctx
        namespace, name = str(key).split("/", 1)
        pod = ctx.informers["pods"].get(str(key))
        if pod is None:
            await self.forget(namespace, name)
            return
        meta: dict[str, Any] = pod["metadata"]
        spec: dict[str, Any] = pod["spec"]
        if spec.get("hostNetwork") or not spec.get("nodeName") or meta.get("deletionTimestamp"):
            # Unbound: nothing yet. Terminating: the address stays until the
            # pod object is gone (the kubelet may still be tearing it down).
            return
        uid = str(meta.get("uid") or "")
        annotations: dict[str, str] = meta.get("annotations") or {}
        try:
            attachments = parse_networks(annotations.get(NETWORKS, ""), namespace)
        except KovnError as exc:
            ctx.failed_pods.add(str(key))
            ctx.pod_board.failed(nic_key(namespace, name, NIC), exc, uid)
            raise
        failures: list[KovnError] = []
        for nic, attachment in [(NIC, None), *((a.nic, a) for a in attachments)]:
            try:
                if not await self._reconcile_nic(pod, nic, attachment):
                    return  # the pod went away meanwhile
            except KovnError as exc:
                if exc.retryable:
                    raise
                ctx.pod_board.failed(nic_key(namespace, name, nic), exc, uid)
                failures.append(exc)
        if failures:
            ctx.failed_pods.add(str(key))
            raise failures[0]
        ctx.failed_pods.discard(str(key))

    async def _reconcile_nic(self, pod: Obj, nic: str, attachment: Attachment | None) -> bool:
        """One NIC: allocate, port, annotations, answer. False: the pod is gone."""
        ctx = self.ctx
        meta: dict[str, Any] = pod["metadata"]
        spec: dict[str, Any] = pod["spec"]
        namespace, name = meta["namespace"], meta["name"]
        uid = str(meta.get("uid") or "")
        annotations: dict[str, str] = meta.get("annotations") or {}
        nkey = nic_key(namespace, name, nic)
        if attachment is None and nkey not in ctx.allocations:
            await self.intents.confirm_default(namespace, annotations, nic)
            await self.intents.confirm_no_pool(namespace, annotations, nic)
        req = self.intents.request(namespace, annotations, nic, attachment)
        qos = self.intents.qos(annotations, nic)
        alloc = await self._allocate(namespace, name, uid, req)
        net = self.intents.network(meta, spec["nodeName"], req, alloc, qos)
        row = pod_port_row(
            namespace,
            name,
            nic,
            req.subnet.name,
            NicAddress(alloc.mac, net.addresses),
            spec["nodeName"],
        )
        await ctx.sync.sync(names.pod_owner(namespace, name, nic), [row])
        want = {
            ann.key(ann.ALLOCATED, nic): "true",
            ann.key(ann.IP_ADDRESS, nic): ",".join(a.ip for a in alloc.addresses),
            ann.key(ann.MAC_ADDRESS, nic): alloc.mac,
            ann.key(ann.CIDR, nic): ",".join(a.cidr for a in alloc.addresses),
            ann.key(ann.GATEWAY, nic): ",".join(net.gateways),
            ann.key(ann.LOGICAL_SWITCH, nic): req.subnet.name,
            ann.key(ann.LOGICAL_PORT, nic): net.logical_port,
            ann.key(ann.POD_UID, nic): uid,
        }
        patch = {k: v for k, v in want.items() if annotations.get(k) != v}
        if patch:
            try:
                await ctx.kube.merge_patch(
                    resource_path("", "v1", "pods", namespace, name),
                    {"metadata": {"annotations": patch}},
                )
                metrics.KUBE_WRITES.labels(kind="pod").inc()
            except KubeError as exc:
                if exc.status == 404:
                    return False  # deleted meanwhile; its deletion event follows
                raise
        if nic == NIC:
            distributed = req.subnet.gateway_type == "distributed"
            ips = tuple(a.ip for a in alloc.addresses) if distributed else ()
            ctx.index_pod(nkey, spec["nodeName"], ips)
        ctx.pod_board.ready(nkey, net, uid)
        return True

    async def _allocate(
        self, namespace: str, name: str, uid: str, req: NicRequest
    ) -> ipam_pb2.Allocation:
        ctx = self.ctx
        nkey = nic_key(namespace, name, req.nic)
        have = ctx.allocations.get(nkey)
        if have is not None:
            if _satisfies(have, req):
                ctx.pod_nics.setdefault(f"{namespace}/{name}", set()).add(req.nic)
                return have
            if have.pod_uid and have.pod_uid != uid:
                # A previous pod of the same name held it; that pod is gone.
                await ctx.ipam.release(have.owner)
                ctx.allocations.pop(nkey, None)
            else:
                held = ", ".join(a.ip for a in have.addresses)
                raise FailedPrecondition(
                    f"the pod already holds {held} ({have.mac}) in subnet {have.owner.network}; "
                    "recreate the pod to change its address"
                )
        who = owner(req.subnet.name, namespace, name, req.nic)
        try:
            alloc = await ctx.ipam.allocate(
                who, pod_uid=uid, ips=req.ips, mac=req.mac, pool=req.pool
            )
        except FailedPrecondition:
            # The owner holds something else: from a previous incarnation?
            old = await ctx.ipam.get_allocation(who)
            if not old.pod_uid or old.pod_uid == uid:
                raise
            await ctx.ipam.release(who)
            alloc = await ctx.ipam.allocate(
                who, pod_uid=uid, ips=req.ips, mac=req.mac, pool=req.pool
            )
        except (AlreadyExists, ResourceExhausted, NotFound, InvalidArgument) as exc:
            raise type(exc)(exc.message, field=_field_for(exc, req)) from None
        ctx.allocations[nkey] = alloc
        ctx.pod_nics.setdefault(f"{namespace}/{name}", set()).add(req.nic)
        ctx.usage_changed.set()
        return alloc

    async def forget(self, namespace: str, name: str) -> None:
        """The pod object is gone: remove its ports and release its addresses."""
        ctx = self.ctx
        nics = {NIC} | ctx.pod_nics.pop(f"{namespace}/{name}", set())
        for nic in sorted(nics):
            ctx.allocations.pop(nic_key(namespace, name, nic), None)
            await ctx.sync.remove(names.pod_owner(namespace, name, nic))
        released = 0
        async for alloc in ctx.ipam.allocations_of(namespace, name):
            await ctx.ipam.release(alloc.owner)
            released += 1
        if released:
            ctx.usage_changed.set()
        for nic in nics:
            ctx.pod_board.clear(nic_key(namespace, name, nic))
        ctx.index_pod(nic_key(namespace, name, NIC), "", ())
        ctx.failed_pods.discard(f"{namespace}/{name}")
        log.debug("pod network removed", namespace=namespace, pod=name, released=released)

    async def report(self, key: Hashable, exc: BaseException) -> None:
        """A permanent failure: a Warning Event on the pod."""
        pod = self.ctx.informers["pods"].get(str(key))
        if pod is not None:
            await self.ctx.events.warning(pod_ref(pod), "NetworkSetupFailed", str(exc))


def _satisfies(alloc: ipam_pb2.Allocation, req: NicRequest) -> bool:
    if alloc.owner.network != req.subnet.name:
        return False
    if req.ips and sorted(req.ips) != sorted(a.ip for a in alloc.addresses):
        return False
    if req.mac and req.mac != alloc.mac.lower():
        return False
    return not (req.pool and req.pool != alloc.pool)


def _field_for(exc: KovnError, req: NicRequest) -> str | None:
    """Name the pod annotation behind an ipam refusal, for the user."""
    text = exc.message.lower()
    if req.mac and ("mac" in text or (exc.field or "").endswith("mac")):
        return ann.key(ann.MAC_ADDRESS, req.nic)
    if req.ips and isinstance(exc, AlreadyExists | InvalidArgument):
        return ann.key(ann.IP_ADDRESS, req.nic)
    if req.pool:
        return ann.key(ann.IP_POOL, req.nic)
    return exc.field
