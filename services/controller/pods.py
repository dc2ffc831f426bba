"""Pod reconciler: a bound pod gets an address, a logical port, annotations.

Runs for one pod at a time (the work queue guarantees it) against the
pod's *current* cached state. The subnet is chosen by annotation, else by
the namespace's binding, else the default; ipam allocates (honouring fixed
IP/MAC and pools, idempotent per owner, so a retry or a new leader gets the
same answer); the port is written through the batching NB writer; the
result is patched onto the pod and posted to the board GetPodNetwork waits
on. A request that can never succeed is posted as the pod's error (and an
Event), so the CNI ADD fails with that message instead of timing out.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
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
from services.controller import metrics, topology
from services.controller.attachments import NETWORKS, Attachment, parse_networks
from services.controller.context import Context, NicNetwork, nic_key
from services.controller.events import pod_ref
from services.controller.fresh import SingleFlightList
from services.controller.ipam_client import owner
from services.controller.nb.rows import OwnedRow
from services.controller.subnet_spec import SubnetSpec
from services.controller.workqueue import Retry

log = structlog.get_logger(__name__)

NIC = "eth0"
_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")


@dataclass(frozen=True)
class Request:
    subnet: SubnetSpec
    ips: tuple[str, ...] = ()
    mac: str = ""
    pool: str = ""
    nic: str = "eth0"


def _rate_bps(annotations: dict[str, str], name: str) -> int:
    value, key = ann.read(annotations, name)
    if not value:
        return 0
    try:
        mbps = float(value)
    except ValueError:
        raise InvalidArgument(f"{value!r} is not a number of Mbit/s", field=key) from None
    if mbps < 0:
        raise InvalidArgument(f"{value!r} must not be negative", field=key)
    return int(mbps * 1_000_000)


class PodReconciler:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._fresh_subnets = SingleFlightList(ctx.kube, ctx.informers.subnets.path)
        self._fresh_pools = SingleFlightList(ctx.kube, ctx.informers.ippools.path)

    # -- choosing -----------------------------------------------------------

    def namespace_subnet(self, namespace: str) -> SubnetSpec | None:
        ns = self.ctx.informers.namespaces.get(namespace)
        if ns is not None:
            name, _ = ann.read((ns.get("metadata") or {}).get("annotations"), ann.LOGICAL_SWITCH)
            if name and name in self.ctx.subnets:
                return self.ctx.subnets[name]
        for spec in self.ctx.pod_subnets():
            if namespace in spec.namespaces and not spec.provider:
                return spec
        return None

    async def confirm_default(self, namespace: str, annotations: dict[str, str], nic: str) -> None:
        """Before a new address comes from the default subnet, make sure no
        Subnet binds the namespace that this replica has not seen yet (see
        services/controller/fresh.py): Retry while one is being reconciled,
        a precise error when the one bound is invalid."""
        ctx = self.ctx
        if any(ann.read(annotations, key, nic)[0] for key in (ann.LOGICAL_SWITCH, ann.IP_POOL)):
            return  # the pod chose for itself
        if ctx.informers.namespaces.get(namespace) is None:
            raise Retry(f"namespace {namespace!r} not observed yet", delay=0.1)
        if self.namespace_subnet(namespace) is not None:
            return
        await self._confirm_unbound(
            self._fresh_subnets,
            "Subnet",
            namespace,
            ctx.subnet_errors,
            lambda spec: not spec.get("provider"),
        )

    async def confirm_no_pool(self, namespace: str, annotations: dict[str, str], nic: str) -> None:
        """Before a new address comes from outside any pool, make sure no
        IPPool binds the namespace that this replica has not reconciled yet:
        the same race as confirm_default's, for a pool applied together with
        the pods of its namespace."""
        ctx = self.ctx
        if any(ann.read(annotations, key, nic)[0] for key in (ann.IP_POOL, ann.IP_ADDRESS)):
            return  # the pod chose for itself
        if any(namespace in p.namespaces for p in ctx.pools.values()):
            return  # request() picks it from the cache
        switch = ann.read(annotations, ann.LOGICAL_SWITCH, nic)[0]
        await self._confirm_unbound(
            self._fresh_pools,
            "IPPool",
            namespace,
            ctx.pool_errors,
            # A pod that asked for another subnet is not in the pool.
            lambda spec: not switch or switch == spec.get("subnet"),
        )

    async def _confirm_unbound(
        self,
        fresh: SingleFlightList,
        kind: str,
        namespace: str,
        errors: dict[str, str],
        applies: Callable[[dict[str, Any]], bool],
    ) -> None:
        """Retry if a `kind` this replica has not taken in yet binds namespace
        (as listed now, not as cached); FailedPrecondition if it is invalid."""
        started = time.monotonic()
        try:
            items = await fresh.items(not_before=started)
        except KubeError as exc:
            if exc.status == 404:
                return  # the CRD is not installed: nothing can bind
            raise Retry(f"cannot list {kind}s: {exc}", delay=0.5) from None
        for obj in items:
            spec = obj.get("spec") or {}
            if namespace not in (spec.get("namespaces") or []) or not applies(spec):
                continue
            name = str((obj.get("metadata") or {}).get("name", ""))
            if name in errors:
                raise FailedPrecondition(
                    f"namespace {namespace!r} is bound to {kind} {name!r}, which is not ready: "
                    f"{errors[name]}",
                    field=f"{kind} {name} spec.namespaces",
                )
            raise Retry(f"{kind} {name!r} binds {namespace!r} but is not reconciled yet", 0.1)

    def attachment_subnet(self, att: Attachment) -> SubnetSpec:
        for spec in self.ctx.pod_subnets():
            if spec.provider in att.providers:
                return spec
        raise NotFound(
            f"no ready Subnet has provider {att.providers[0]!r} for interface {att.nic!r}",
            field=NETWORKS,
        )

    def request(
        self,
        namespace: str,
        annotations: dict[str, str],
        nic: str = NIC,
        attachment: Attachment | None = None,
    ) -> Request:
        """What the pod asks for on `nic`; raises naming the annotation when invalid."""
        ctx = self.ctx
        pool_name, pool_key = ann.read(annotations, ann.IP_POOL, nic)
        pool = None
        if pool_name:
            pool = ctx.pools.get(pool_name)
            if pool is None:
                if ctx.informers.ippools.get(pool_name) is not None:
                    raise Retry(f"IPPool {pool_name!r} is not reconciled yet", delay=0.2)
                raise NotFound(f"IPPool {pool_name!r} does not exist", field=pool_key)
        switch, switch_key = ann.read(annotations, ann.LOGICAL_SWITCH, nic)
        if attachment is None and pool is None and not ann.read(annotations, ann.IP_ADDRESS)[0]:
            # A pool bound to the pod's namespace applies when the pod names
            # neither a pool nor an address (and no other subnet).
            pool = next(
                (
                    p
                    for _, p in sorted(ctx.pools.items())
                    if namespace in p.namespaces and switch in ("", p.subnet)
                ),
                None,
            )
            if pool is not None:
                pool_name, pool_key = pool.name, f"IPPool {pool.name} spec.namespaces"
        if switch:
            subnet = ctx.subnets.get(switch)
            if (
                subnet is None
                and switch not in ctx.subnet_errors
                and ctx.informers.subnets.get(switch) is not None
            ):
                raise Retry(f"subnet {switch!r} is not reconciled yet", delay=0.2)
            if subnet is None or subnet.internal:
                why = ctx.subnet_errors.get(switch)
                detail = f" ({why})" if why else ""
                raise NotFound(
                    f"subnet {switch!r} does not exist or is not ready{detail}", field=switch_key
                )
        elif pool is not None:
            if pool.subnet not in ctx.subnets:
                raise NotFound(
                    f"subnet {pool.subnet!r} of IPPool {pool.name!r} is not ready", field=pool_key
                )
            subnet = ctx.subnets[pool.subnet]
        elif attachment is not None:
            subnet = self.attachment_subnet(attachment)
        else:
            subnet = self.namespace_subnet(namespace) or ctx.default_subnet
        if pool is not None and pool.subnet != subnet.name:
            raise FailedPrecondition(
                f"IPPool {pool.name!r} belongs to subnet {pool.subnet!r}, not {subnet.name!r}",
                field=pool_key,
            )
        ips_raw, ip_key = ann.read(annotations, ann.IP_ADDRESS, nic)
        ips: list[str] = []
        for part in (p.strip() for p in ips_raw.split(",") if p.strip()):
            try:
                addr = ipaddress.ip_address(part.split("/", 1)[0])
            except ValueError:
                raise InvalidArgument(f"{part!r} is not an IP address", field=ip_key) from None
            if not any(addr in c for c in subnet.cidrs):
                raise InvalidArgument(
                    f"{addr} is not inside subnet {subnet.name} ({', '.join(subnet.cidr_strings)})",
                    field=ip_key,
                )
            if addr in subnet.gateways:
                raise InvalidArgument(
                    f"{addr} is the gateway of subnet {subnet.name}", field=ip_key
                )
            ips.append(str(addr))
        mac, mac_key = ann.read(annotations, ann.MAC_ADDRESS, nic)
        if mac:
            if not _MAC.match(mac):
                raise InvalidArgument(f"{mac!r} is not a MAC address", field=mac_key)
            if int(mac.split(":")[0], 16) & 1:
                raise InvalidArgument(f"{mac} is a multicast MAC", field=mac_key)
            mac = mac.lower()
        return Request(subnet=subnet, ips=tuple(ips), mac=mac, pool=pool_name, nic=nic)

    # -- reconciling --------------------------------------------------------

    async def reconcile(self, key: Hashable) -> None:
        ctx = self.ctx
        namespace, name = str(key).split("/", 1)
        pod = ctx.informers.pods.get(str(key))
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
            await self.confirm_default(namespace, annotations, nic)
            await self.confirm_no_pool(namespace, annotations, nic)
        req = self.request(namespace, annotations, nic, attachment)
        primary = nic == NIC
        qos = (0, 0)
        if primary:
            qos = (
                _rate_bps(annotations, ann.INGRESS_RATE),
                _rate_bps(annotations, ann.EGRESS_RATE),
            )
        alloc = await self._allocate(namespace, name, uid, req)
        addresses = tuple(a.address for a in alloc.addresses)
        gateways = tuple(a.gateway for a in alloc.addresses)
        port = topology.pod_port_name(namespace, name, nic)
        row = topology.pod_port_row(
            namespace,
            name,
            nic,
            req.subnet.name,
            topology.NicAddress(alloc.mac, addresses),
            spec["nodeName"],
        )
        if ctx.nb_known.get((row.table, row.name)) != row.digest:
            await ctx.writer.write([row])
            ctx.nb_known[(row.table, row.name)] = row.digest
        want = {
            ann.key(ann.ALLOCATED, nic): "true",
            ann.key(ann.IP_ADDRESS, nic): ",".join(a.ip for a in alloc.addresses),
            ann.key(ann.MAC_ADDRESS, nic): alloc.mac,
            ann.key(ann.CIDR, nic): ",".join(a.cidr for a in alloc.addresses),
            ann.key(ann.GATEWAY, nic): ",".join(gateways),
            ann.key(ann.LOGICAL_SWITCH, nic): req.subnet.name,
            ann.key(ann.LOGICAL_PORT, nic): port,
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
        if primary:
            distributed = req.subnet.gateway_type == "distributed"
            ips = tuple(a.ip for a in alloc.addresses) if distributed else ()
            ctx.index_pod(nkey, spec["nodeName"], ips)
        ctx.pod_board.ready(
            nkey,
            NicNetwork(
                namespace=namespace,
                name=name,
                uid=uid,
                nic=nic,
                logical_port=port,
                logical_switch=req.subnet.name,
                mac=alloc.mac,
                mtu=req.subnet.mtu or ctx.config.mtu,
                addresses=addresses,
                gateways=gateways,
                node=spec["nodeName"],
                ingress_bps=qos[0],
                egress_bps=qos[1],
            ),
            uid,
        )
        return True

    async def _allocate(
        self, namespace: str, name: str, uid: str, req: Request
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
        removals = []
        for nic in sorted(nics):
            port = topology.pod_port_name(namespace, name, nic)
            known = ctx.nb_known.pop(("Logical_Switch_Port", port), None)
            have = ctx.allocations.pop(nic_key(namespace, name, nic), None)
            if known is not None or have is not None:
                owner_id = f"pod/{namespace}/{name}/{nic}"
                removals.append(OwnedRow("Logical_Switch_Port", port, owner_id, "", ""))
        if removals:
            await ctx.writer.write(remove=removals)
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
        pod = self.ctx.informers.pods.get(str(key))
        if pod is not None:
            await self.ctx.events.warning(pod_ref(pod), "NetworkSetupFailed", str(exc))


def _satisfies(alloc: ipam_pb2.Allocation, req: Request) -> bool:
    if alloc.owner.network != req.subnet.name:
        return False
    if req.ips and sorted(req.ips) != sorted(a.ip for a in alloc.addresses):
        return False
    if req.mac and req.mac != alloc.mac.lower():
        return False
    return not (req.pool and req.pool != alloc.pool)


def _field_for(exc: KovnError, req: Request) -> str | None:
    """Name the pod annotation behind an ipam refusal, for the user."""
    text = exc.message.lower()
    if req.mac and ("mac" in text or (exc.field or "").endswith("mac")):
        return ann.key(ann.MAC_ADDRESS, req.nic)
    if req.ips and isinstance(exc, AlreadyExists | InvalidArgument):
        return ann.key(ann.IP_ADDRESS, req.nic)
    if req.pool:
        return ann.key(ann.IP_POOL, req.nic)
    return exc.field
