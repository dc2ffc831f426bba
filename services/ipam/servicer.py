"""The kovn.ipam.v1.Ipam gRPC servicer: protobuf in, IpamCore, protobuf out.

Only translation lives here (and the checks that belong to the wire format,
such as a missing owner message); behaviour is in core.py, so that tests of
behaviour do not need a server and the wire contract stays thin.
"""

from __future__ import annotations

import structlog

from services.api.ipam.v1 import ipam_pb2, ipam_pb2_grpc
from services.common.errors import InvalidArgument
from services.common.grpc_types import Context
from services.ipam.allocator import Usage
from services.ipam.core import IpamCore
from services.ipam.model import AllocationRecord, Owner, PoolSpec, SubnetSpec
from services.ipam.request import AllocationRequest

_UINT64_MAX = 2**64 - 1
_FAMILY = {ipam_pb2.IPV4: 4, ipam_pb2.IPV6: 6}
_FAMILY_ENUM = {4: ipam_pb2.IPV4, 6: ipam_pb2.IPV6}


def owner_from(msg: ipam_pb2.Owner, has: bool, field: str = "owner") -> Owner:
    if not has:
        raise InvalidArgument("an owner {network, namespace, pod, nic} is required", field=field)
    return Owner.checked(msg.network, msg.namespace, msg.pod, msg.nic)


def owner_msg(owner: Owner) -> ipam_pb2.Owner:
    return ipam_pb2.Owner(
        network=owner.network, namespace=owner.namespace, pod=owner.pod, nic=owner.nic
    )


def subnet_msg(spec: SubnetSpec) -> ipam_pb2.Subnet:
    return ipam_pb2.Subnet(
        name=spec.name,
        cidrs=spec.cidrs,
        gateways=spec.gateways,
        excludes=spec.excludes,
        revision=spec.revision,
    )


def subnet_spec(msg: ipam_pb2.Subnet) -> SubnetSpec:
    return SubnetSpec(msg.name, list(msg.cidrs), list(msg.gateways), list(msg.excludes))


def pool_msg(pool: PoolSpec) -> ipam_pb2.Pool:
    return ipam_pb2.Pool(subnet=pool.subnet, name=pool.name, addresses=pool.addresses)


def _cap(value: int) -> int:
    return min(value, _UINT64_MAX)


def usage_msg(u: Usage) -> ipam_pb2.Usage:
    return ipam_pb2.Usage(
        subnet=u.subnet,
        family=_FAMILY_ENUM[u.family],
        cidr=u.cidr,
        total=_cap(u.total),
        used=_cap(u.used),
        free=_cap(u.free),
        excluded=_cap(u.excluded),
        cooling=_cap(u.cooling),
        pooled=_cap(u.pooled),
    )


class IpamServicer(ipam_pb2_grpc.IpamServicer):
    def __init__(self, core: IpamCore) -> None:
        self.core = core

    def allocation_msg(self, rec: AllocationRecord, reused: bool = False) -> ipam_pb2.Allocation:
        addresses = [
            ipam_pb2.Address(
                ip=ip,
                prefix_length=prefix,
                address=f"{ip}/{prefix}",
                gateway=gateway,
                family=_FAMILY_ENUM[family],
                cidr=cidr,
            )
            for ip, prefix, gateway, family, cidr in self.core.address_details(rec)
        ]
        return ipam_pb2.Allocation(
            owner=owner_msg(rec.owner),
            pod_uid=rec.pod_uid,
            container_id=rec.container_id,
            addresses=addresses,
            mac=rec.mac,
            pool=rec.pool,
            created_unix_ms=rec.created_ms,
            reused=reused,
        )

    # ---- subnets -------------------------------------------------------------

    async def CreateSubnet(
        self, request: ipam_pb2.CreateSubnetRequest, context: Context
    ) -> ipam_pb2.Subnet:
        if not request.HasField("subnet"):
            raise InvalidArgument("a subnet is required", field="subnet")
        return subnet_msg(await self.core.create_subnet(subnet_spec(request.subnet)))

    async def UpdateSubnet(
        self, request: ipam_pb2.UpdateSubnetRequest, context: Context
    ) -> ipam_pb2.Subnet:
        if not request.HasField("subnet"):
            raise InvalidArgument("a subnet is required", field="subnet")
        return subnet_msg(await self.core.update_subnet(subnet_spec(request.subnet)))

    async def DeleteSubnet(
        self, request: ipam_pb2.DeleteSubnetRequest, context: Context
    ) -> ipam_pb2.DeleteSubnetResponse:
        await self.core.delete_subnet(request.name)
        return ipam_pb2.DeleteSubnetResponse()

    async def GetSubnet(
        self, request: ipam_pb2.GetSubnetRequest, context: Context
    ) -> ipam_pb2.Subnet:
        return subnet_msg(self.core.get_subnet(request.name))

    async def ListSubnets(
        self, request: ipam_pb2.ListSubnetsRequest, context: Context
    ) -> ipam_pb2.ListSubnetsResponse:
        return ipam_pb2.ListSubnetsResponse(
            subnets=[subnet_msg(s) for s in self.core.list_subnets()]
        )

    # ---- pools ---------------------------------------------------------------

    async def CreatePool(
        self, request: ipam_pb2.CreatePoolRequest, context: Context
    ) -> ipam_pb2.Pool:
        if not request.HasField("pool"):
            raise InvalidArgument("a pool is required", field="pool")
        p = request.pool
        return pool_msg(await self.core.create_pool(PoolSpec(p.subnet, p.name, list(p.addresses))))

    async def DeletePool(
        self, request: ipam_pb2.DeletePoolRequest, context: Context
    ) -> ipam_pb2.DeletePoolResponse:
        await self.core.delete_pool(request.subnet, request.name)
        return ipam_pb2.DeletePoolResponse()

    async def ListPools(
        self, request: ipam_pb2.ListPoolsRequest, context: Context
    ) -> ipam_pb2.ListPoolsResponse:
        return ipam_pb2.ListPoolsResponse(
            pools=[pool_msg(p) for p in self.core.list_pools(request.subnet)]
        )

    # ---- allocations ---------------------------------------------------------

    async def Allocate(
        self, request: ipam_pb2.AllocateRequest, context: Context
    ) -> ipam_pb2.Allocation:
        owner = owner_from(request.owner, request.HasField("owner"))
        # Every log line of this call names the pod (the chassis scopes it to the call).
        structlog.contextvars.bind_contextvars(
            pod=f"{owner.namespace}/{owner.pod}", container_id=request.container_id
        )
        families = []
        for f in request.families:
            if f not in _FAMILY:
                raise InvalidArgument(f"{f} is not IPV4 or IPV6", field="families")
            families.append(_FAMILY[f])
        rec, reused = await self.core.allocate(
            AllocationRequest(
                owner,
                ips=request.ips,
                mac=request.mac,
                pool=request.pool,
                families=families,
                pod_uid=request.pod_uid,
                container_id=request.container_id,
            )
        )
        return self.allocation_msg(rec, reused)

    async def Release(
        self, request: ipam_pb2.ReleaseRequest, context: Context
    ) -> ipam_pb2.ReleaseResponse:
        owner = owner_from(request.owner, request.HasField("owner"))
        released = await self.core.release(owner)
        return ipam_pb2.ReleaseResponse(released=[self.allocation_msg(r) for r in released])

    async def ReleaseAddress(
        self, request: ipam_pb2.ReleaseAddressRequest, context: Context
    ) -> ipam_pb2.ReleaseResponse:
        released = await self.core.release_address(request.subnet, request.ip)
        return ipam_pb2.ReleaseResponse(released=[self.allocation_msg(r) for r in released])

    async def GetAllocation(
        self, request: ipam_pb2.GetAllocationRequest, context: Context
    ) -> ipam_pb2.Allocation:
        owner = owner_from(request.owner, request.HasField("owner"))
        return self.allocation_msg(await self.core.get_allocation(owner))

    async def ListAllocations(
        self, request: ipam_pb2.ListAllocationsRequest, context: Context
    ) -> ipam_pb2.ListAllocationsResponse:
        records, token = self.core.list_allocations(
            subnet=request.subnet,
            namespace=request.namespace,
            pod=request.pod,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return ipam_pb2.ListAllocationsResponse(
            allocations=[self.allocation_msg(r) for r in records], next_page_token=token
        )

    async def GetUsage(
        self, request: ipam_pb2.GetUsageRequest, context: Context
    ) -> ipam_pb2.GetUsageResponse:
        return ipam_pb2.GetUsageResponse(
            usage=[usage_msg(u) for u in self.core.usage(request.subnet)]
        )

    async def Reconcile(
        self, request: ipam_pb2.ReconcileRequest, context: Context
    ) -> ipam_pb2.ReconcileResponse:
        live = [owner_from(o, True, "live") for o in request.live]
        freed = await self.core.reconcile(
            live,
            subnet=request.subnet,
            allocated_before_ms=request.allocated_before_unix_ms,
            dry_run=request.dry_run,
        )
        return ipam_pb2.ReconcileResponse(released=[self.allocation_msg(r) for r in freed])
