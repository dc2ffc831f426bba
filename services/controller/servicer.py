"""The kovn.controller.v1 API: GetPodNetwork and GetNodeNetwork.

Answers come from the boards the reconcilers post to; a call waits on the
board's event (never a timer) until the answer exists, the pod's request is
known to be unsatisfiable, or the caller's deadline passes. Only the leader
reconciles, so a follower forwards the call to the leader named on the
Lease, with the caller's remaining deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any

import grpc

from services.api.controller.v1 import controller_pb2, controller_pb2_grpc
from services.common.client import channel
from services.common.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
    from_rpc_error,
)
from services.common.grpc_types import Context as GrpcContext
from services.common.kube import KubeError, resource_path
from services.controller.board import Entry
from services.controller.context import Context, NicNetwork, nic_key
from services.controller.leader import LeaderElector

FORWARDED_KEY = "x-kovn-forwarded"
_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
DEFAULT_WAIT = 30.0


def _routes(net: NicNetwork) -> list[controller_pb2.Route]:
    """Exactly the routes the NIC's intent holds (see nic_intent.routes)."""
    return [controller_pb2.Route(destination=d, gateway=g) for d, g in net.routes]


def _ips(net: NicNetwork) -> list[controller_pb2.IPConfig]:
    return [
        controller_pb2.IPConfig(address=a, gateway=g)
        for a, g in zip(net.addresses, net.gateways, strict=False)
    ]


class ControllerServicer(controller_pb2_grpc.ControllerServicer):
    def __init__(self, ctx: Context, elector: LeaderElector) -> None:
        self.ctx = ctx
        self.elector = elector
        self._leader_channel: tuple[str, grpc.aio.Channel] | None = None
        self._closing: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        if self._leader_channel is not None:
            await self._leader_channel[1].close(None)
            self._leader_channel = None

    # -- forwarding ------------------------------------------------------------

    def _stub(self) -> Any:
        address = self.elector.leader_address
        if not address or self.elector.leader_identity == self.elector.identity:
            raise Unavailable("no controller leader is known yet", retry_after=1.0)
        if self._leader_channel is None or self._leader_channel[0] != address:
            old = self._leader_channel
            cfg = self.ctx.config
            # Replicas share one CA: the one that verifies our clients also
            # signed the leader's certificate, and ours proves who we are.
            creds = {"ca": cfg.tls_client_ca, "cert": cfg.tls_cert, "key": cfg.tls_key}
            if not cfg.tls_client_ca:
                creds = {"ca": "", "cert": "", "key": ""}
            self._leader_channel = (address, channel(address, **creds))
            if old is not None:
                # Closing can wait for calls on it; never block this call on that.
                task = asyncio.create_task(old[1].close(None))
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
        return controller_pb2_grpc.ControllerStub(self._leader_channel[1])  # type: ignore[no-untyped-call]

    async def _await_leader(self, context: GrpcContext) -> None:
        """Until some replica leads (a fresh replica has not seen the Lease yet)."""
        remaining = context.time_remaining()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (DEFAULT_WAIT if remaining is None else remaining)
        while not self.elector.is_leader and not self.elector.leader_address:
            left = deadline - loop.time()
            if left <= 0:
                raise Unavailable("no controller leader is known yet", retry_after=1.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.elector.changed.wait(), left)

    async def _forward(self, method: str, request: Any, context: GrpcContext) -> Any:
        if any(k == FORWARDED_KEY for k, _ in context.invocation_metadata() or ()):
            raise Unavailable("leadership is changing; retry", retry_after=0.5)
        await self._await_leader(context)
        if self.elector.is_leader:
            return await getattr(self, method)(request, context)
        stub = self._stub()
        try:
            return await getattr(stub, method)(
                request, timeout=context.time_remaining(), metadata=((FORWARDED_KEY, "1"),)
            )
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err) from None

    # -- GetPodNetwork -----------------------------------------------------------

    async def GetPodNetwork(
        self, request: controller_pb2.GetPodNetworkRequest, context: GrpcContext
    ) -> controller_pb2.PodNetwork:
        if not request.namespace:
            raise InvalidArgument("must not be empty", field="namespace")
        if not request.name:
            raise InvalidArgument("must not be empty", field="name")
        nic = request.nic or "eth0"
        if not _IFNAME.match(nic):
            raise InvalidArgument(f"{nic!r} is not an interface name", field="nic")
        if not self.elector.is_leader:
            result: controller_pb2.PodNetwork = await self._forward(
                "GetPodNetwork", request, context
            )
            return result
        ctx = self.ctx
        pod_key = f"{request.namespace}/{request.name}"
        if ctx.informers["pods"].get(pod_key) is None:
            try:
                await ctx.kube.get(resource_path("", "v1", "pods", request.namespace, request.name))
            except KubeError as exc:
                if exc.status == 404:
                    raise NotFound(f"pod {pod_key} does not exist") from None
                raise Unavailable(f"cannot read pod {pod_key}: {exc}") from None

        cached = ctx.informers["pods"].get(pod_key)
        if cached is not None and cached["spec"].get("hostNetwork"):
            raise FailedPrecondition(f"pod {pod_key} uses the host network; kovn gives it none")
        # A pod the API has but the watch has not delivered yet is waited
        # for; only a pod seen and then gone ends the wait as NOT_FOUND.
        seen = ctx.informers["pods"].get(pod_key) is not None

        def accept(entry: Entry[NicNetwork]) -> bool:
            nonlocal seen
            if ctx.informers["pods"].get(pod_key) is not None:
                seen = True
            elif seen:
                return True
            if request.pod_uid and entry.uid != request.pod_uid:
                return False
            return entry.value is not None or entry.error is not None

        remaining = context.time_remaining()
        timeout = DEFAULT_WAIT if remaining is None else remaining
        key = nic_key(request.namespace, request.name, nic)
        try:
            entry = await ctx.pod_board.wait(key, accept, timeout, what=f"network of pod {pod_key}")
        except Exception:
            held = ctx.pod_board.get(key)
            if request.pod_uid and held is not None and held.uid and held.uid != request.pod_uid:
                raise FailedPrecondition(
                    f"pod {pod_key} is now uid {held.uid}, not {request.pod_uid}"
                ) from None
            raise
        if ctx.informers["pods"].get(pod_key) is None:
            raise NotFound(f"pod {pod_key} does not exist")
        if entry.error is not None:
            raise FailedPrecondition(f"pod {pod_key}: {entry.error}")
        net = entry.value
        assert net is not None
        if request.node and net.node != request.node:
            raise FailedPrecondition(
                f"pod {pod_key} is bound to node {net.node!r}, not {request.node!r}"
            )
        return controller_pb2.PodNetwork(
            namespace=net.namespace,
            name=net.name,
            pod_uid=net.uid,
            nic=net.nic,
            logical_port=net.logical_port,
            logical_switch=net.logical_switch,
            mac=net.mac,
            mtu=net.mtu,
            ips=_ips(net),
            routes=_routes(net),
            qos=controller_pb2.QoS(
                ingress_rate_bps=net.ingress_bps, egress_rate_bps=net.egress_bps
            ),
            node=net.node,
        )

    # -- GetNodeNetwork ----------------------------------------------------------

    async def GetNodeNetwork(
        self, request: controller_pb2.GetNodeNetworkRequest, context: GrpcContext
    ) -> controller_pb2.NodeNetwork:
        if not request.node:
            raise InvalidArgument("must not be empty", field="node")
        if not self.elector.is_leader:
            result: controller_pb2.NodeNetwork = await self._forward(
                "GetNodeNetwork", request, context
            )
            return result
        ctx = self.ctx
        # A node agent may start before its Node object is registered (the
        # usual boot order): wait for the join port until the deadline, and
        # only then say the node does not exist.
        remaining = context.time_remaining()
        try:
            entry = await ctx.node_board.wait(
                request.node,
                lambda e: e.value is not None or e.error is not None,
                DEFAULT_WAIT if remaining is None else remaining,
                what=f"join port of node {request.node}",
            )
        except DeadlineExceeded:
            if ctx.informers["nodes"].get(request.node) is None:
                raise NotFound(f"node {request.node} does not exist") from None
            raise
        if entry.error is not None:
            raise FailedPrecondition(f"node {request.node}: {entry.error}")
        net = entry.value
        assert net is not None
        return controller_pb2.NodeNetwork(
            node=request.node,
            logical_port=net.logical_port,
            mac=net.mac,
            ips=_ips(net),
            mtu=net.mtu,
            cluster_cidrs=[c for s in ctx.pod_subnets() for c in s.cidr_strings],
            join_cidrs=ctx.join.cidr_strings,
            nat_outgoing_cidrs=[
                c for s in ctx.pod_subnets() if s.nat_outgoing for c in s.cidr_strings
            ],
            service_cidrs=[c.strip() for c in ctx.config.service_cidr.split(",") if c.strip()],
        )
