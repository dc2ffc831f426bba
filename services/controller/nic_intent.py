"""One owner of a NIC's intent: what a pod asks for on each NIC, and the
complete network the node is told to build for it.

The pod reconciler allocates and writes; this module decides. `request`
reads the pod's annotations (and its namespace's bindings) into a checked
`NicRequest` — subnet, fixed addresses, MAC, pool — raising an error that
names the annotation when it is wrong; the `confirm_*` checks close the
race with a Subnet or IPPool that binds the namespace but is not yet seen.
`network` turns what ipam gave into the `NicNetwork` GetPodNetwork answers:
addresses, gateways, MAC, MTU, QoS and exactly the routes the NIC gets (a
default route per family on the primary NIC only; a secondary NIC gets none,
so it can never steal the pod's default route).
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from services.api.ipam.v1 import ipam_pb2
from services.common.errors import FailedPrecondition, InvalidArgument, NotFound
from services.common.kube import KubeError
from services.controller import annotations as ann
from services.controller.attachments import NETWORKS, Attachment
from services.controller.context import Context, NicNetwork
from services.controller.fresh import SingleFlightList
from services.controller.subnet_spec import SubnetSpec
from services.controller.topology import names
from services.controller.workqueue import Retry

PRIMARY_NIC = "eth0"
_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")


@dataclass(frozen=True)
class NicRequest:
    subnet: SubnetSpec
    ips: tuple[str, ...] = ()
    mac: str = ""
    pool: str = ""
    nic: str = PRIMARY_NIC


def rate_bps(annotations: dict[str, str], name: str) -> int:
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


class NicIntents:
    """Decides each NIC's request and network from the controller's caches."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._fresh_subnets = SingleFlightList(ctx.kube, ctx.informers["subnets"].path)
        self._fresh_pools = SingleFlightList(ctx.kube, ctx.informers["ippools"].path)

    def namespace_subnet(self, namespace: str) -> SubnetSpec | None:
        ns = self.ctx.informers["namespaces"].get(namespace)
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
        if ctx.informers["namespaces"].get(namespace) is None:
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
        nic: str = PRIMARY_NIC,
        attachment: Attachment | None = None,
    ) -> NicRequest:
        """What the pod asks for on `nic`; raises naming the annotation when invalid."""
        ctx = self.ctx
        pool_name, pool_key = ann.read(annotations, ann.IP_POOL, nic)
        pool = None
        if pool_name:
            pool = ctx.pools.get(pool_name)
            if pool is None:
                if ctx.informers["ippools"].get(pool_name) is not None:
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
                and ctx.informers["subnets"].get(switch) is not None
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
        return NicRequest(subnet=subnet, ips=tuple(ips), mac=mac, pool=pool_name, nic=nic)

    def qos(self, annotations: dict[str, str], nic: str) -> tuple[int, int]:
        """(ingress, egress) bits per second; QoS applies to the primary NIC."""
        if nic != PRIMARY_NIC:
            return (0, 0)
        return (rate_bps(annotations, ann.INGRESS_RATE), rate_bps(annotations, ann.EGRESS_RATE))

    def network(
        self,
        meta: dict[str, Any],
        node: str,
        req: NicRequest,
        alloc: ipam_pb2.Allocation,
        qos: tuple[int, int],
    ) -> NicNetwork:
        """The complete network of one NIC, as GetPodNetwork answers it."""
        addresses = tuple(a.address for a in alloc.addresses)
        gateways = tuple(a.gateway for a in alloc.addresses)
        return NicNetwork(
            namespace=meta["namespace"],
            name=meta["name"],
            uid=str(meta.get("uid") or ""),
            nic=req.nic,
            logical_port=names.pod_port_name(meta["namespace"], meta["name"], req.nic),
            logical_switch=req.subnet.name,
            mac=alloc.mac,
            mtu=req.subnet.mtu or self.ctx.config.mtu,
            addresses=addresses,
            gateways=gateways,
            node=node,
            routes=routes(req.nic, addresses, gateways),
            ingress_bps=qos[0],
            egress_bps=qos[1],
        )


def routes(
    nic: str, addresses: tuple[str, ...], gateways: tuple[str, ...]
) -> tuple[tuple[str, str], ...]:
    """A default route per family through the subnet's gateway, on the primary
    NIC only. A secondary NIC's own subnet is on-link from its address's
    prefix; a Subnet defines no further routes today."""
    if nic != PRIMARY_NIC:
        return ()
    return tuple(
        ("::/0" if ":" in addr else "0.0.0.0/0", gw)
        for addr, gw in zip(addresses, gateways, strict=False)
        if gw
    )
