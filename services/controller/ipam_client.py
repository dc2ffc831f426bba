"""The controller's calls to the ipam service, with typed errors.

ipam is reached only through its gRPC contract. Every failure comes back as
the typed error ipam raised (`from_rpc_error`), so the work queue can decide
retry (UNAVAILABLE) or give up with an Event (ALREADY_EXISTS, ...).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeVar

import grpc

from services.api.ipam.v1 import ipam_pb2, ipam_pb2_grpc
from services.common.client import channel
from services.common.errors import from_rpc_error
from services.controller.subnet_spec import PoolSpec, SubnetSpec

T = TypeVar("T")


class IpamClient:
    def __init__(
        self, target: str, *, timeout: float = 10.0, ca: str = "", cert: str = "", key: str = ""
    ) -> None:
        self.target = target
        self.timeout = timeout
        self._channel = channel(target, ca=ca, cert=cert, key=key)
        self.stub = ipam_pb2_grpc.IpamStub(self._channel)  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        await self._channel.close(None)

    async def _call(self, method: Callable[..., Awaitable[T]], request: Any) -> T:
        try:
            return await method(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err) from None

    async def get_subnet(self, name: str) -> ipam_pb2.Subnet:
        return await self._call(self.stub.GetSubnet, ipam_pb2.GetSubnetRequest(name=name))

    async def list_subnets(self) -> list[ipam_pb2.Subnet]:
        resp = await self._call(self.stub.ListSubnets, ipam_pb2.ListSubnetsRequest())
        return list(resp.subnets)

    async def ensure_subnet(self, spec: SubnetSpec, existing: ipam_pb2.Subnet | None) -> bool:
        """Create or update the subnet in ipam; True when something changed."""
        want = ipam_pb2.Subnet(
            name=spec.name,
            cidrs=spec.cidr_strings,
            gateways=spec.gateway_strings,
            excludes=list(spec.excludes),
        )
        if existing is None:
            await self._call(self.stub.CreateSubnet, ipam_pb2.CreateSubnetRequest(subnet=want))
            return True
        if (
            list(existing.cidrs) == list(want.cidrs)
            and list(existing.gateways) == list(want.gateways)
            and sorted(existing.excludes) == sorted(want.excludes)
        ):
            return False
        await self._call(self.stub.UpdateSubnet, ipam_pb2.UpdateSubnetRequest(subnet=want))
        return True

    async def delete_subnet(self, name: str) -> None:
        await self._call(self.stub.DeleteSubnet, ipam_pb2.DeleteSubnetRequest(name=name))

    async def list_pools(self) -> list[ipam_pb2.Pool]:
        resp = await self._call(self.stub.ListPools, ipam_pb2.ListPoolsRequest())
        return list(resp.pools)

    async def create_pool(self, pool: PoolSpec) -> ipam_pb2.Pool:
        return await self._call(
            self.stub.CreatePool,
            ipam_pb2.CreatePoolRequest(
                pool=ipam_pb2.Pool(
                    subnet=pool.subnet, name=pool.name, addresses=list(pool.addresses)
                )
            ),
        )

    async def delete_pool(self, subnet: str, name: str) -> None:
        await self._call(self.stub.DeletePool, ipam_pb2.DeletePoolRequest(subnet=subnet, name=name))

    async def allocate(
        self,
        owner: ipam_pb2.Owner,
        *,
        pod_uid: str = "",
        ips: Iterable[str] = (),
        mac: str = "",
        pool: str = "",
    ) -> ipam_pb2.Allocation:
        req = ipam_pb2.AllocateRequest(
            owner=owner, pod_uid=pod_uid, ips=list(ips), mac=mac, pool=pool
        )
        return await self._call(self.stub.Allocate, req)

    async def get_allocation(self, owner: ipam_pb2.Owner) -> ipam_pb2.Allocation:
        return await self._call(self.stub.GetAllocation, ipam_pb2.GetAllocationRequest(owner=owner))

    async def release(self, owner: ipam_pb2.Owner) -> list[ipam_pb2.Allocation]:
        resp = await self._call(self.stub.Release, ipam_pb2.ReleaseRequest(owner=owner))
        return list(resp.released)

    async def allocations(self, subnet: str = "") -> AsyncIterator[ipam_pb2.Allocation]:
        token = ""
        while True:
            resp = await self._call(
                self.stub.ListAllocations,
                ipam_pb2.ListAllocationsRequest(subnet=subnet, page_size=5000, page_token=token),
            )
            for alloc in resp.allocations:
                yield alloc
            token = resp.next_page_token
            if not token:
                return

    async def allocations_of(self, namespace: str, pod: str) -> AsyncIterator[ipam_pb2.Allocation]:
        resp = await self._call(
            self.stub.ListAllocations,
            ipam_pb2.ListAllocationsRequest(namespace=namespace, pod=pod, page_size=100),
        )
        for alloc in resp.allocations:
            yield alloc

    async def usage(self) -> list[ipam_pb2.Usage]:
        resp = await self._call(self.stub.GetUsage, ipam_pb2.GetUsageRequest())
        return list(resp.usage)

    async def reconcile(
        self, live: list[ipam_pb2.Owner], allocated_before_unix_ms: int
    ) -> list[ipam_pb2.Allocation]:
        resp = await self._call(
            self.stub.Reconcile,
            ipam_pb2.ReconcileRequest(live=live, allocated_before_unix_ms=allocated_before_unix_ms),
        )
        return list(resp.released)


def owner(network: str, namespace: str, pod: str, nic: str = "eth0") -> ipam_pb2.Owner:
    return ipam_pb2.Owner(network=network, namespace=namespace, pod=pod, nic=nic or "eth0")


def owner_key(o: ipam_pb2.Owner) -> tuple[str, str, str, str]:
    return (o.network, o.namespace, o.pod, o.nic or "eth0")
