"""The dataplane's view of the controller: a pod NIC's network, the node's
join port. gRPC failures become CNI errors with codes a runtime acts on."""

from __future__ import annotations

import grpc

from cni_shim import spec
from cni_shim.spec import CniError
from services.api.controller.v1 import controller_pb2, controller_pb2_grpc
from services.common.client import channel


class ControllerClient:
    def __init__(self, target: str, node: str, *, ca: str = "", cert: str = "", key: str = ""):
        self.target = target
        self.node = node
        self._channel = channel(target, ca=ca, cert=cert, key=key) if target else None
        self._stub = (
            controller_pb2_grpc.ControllerStub(self._channel)  # type: ignore[no-untyped-call]
            if self._channel
            else None
        )

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close(None)

    async def get(
        self, namespace: str, name: str, nic: str, pod_uid: str, timeout: float
    ) -> controller_pb2.PodNetwork:
        if self._stub is None:
            raise CniError(spec.TRY_AGAIN, "no controller configured (--controller)")
        request = controller_pb2.GetPodNetworkRequest(
            namespace=namespace, name=name, nic=nic, pod_uid=pod_uid, node=self.node
        )
        pod = f"{namespace}/{name}"
        try:
            reply: controller_pb2.PodNetwork = await self._stub.GetPodNetwork(
                request, timeout=timeout, wait_for_ready=True
            )
        except grpc.aio.AioRpcError as err:
            code, details = err.code(), err.details() or ""
            if code == grpc.StatusCode.NOT_FOUND:
                raise CniError(spec.POD_NOT_FOUND, f"pod {pod}: {details}") from None
            if code in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT):
                raise CniError(spec.POD_NETWORK_REFUSED, f"pod {pod}: {details}") from None
            raise CniError(
                spec.TRY_AGAIN, f"controller {self.target}: {code.name}: {details}"
            ) from None
        return reply

    async def node_network(self, timeout: float) -> controller_pb2.NodeNetwork:
        if self._stub is None:
            raise RuntimeError("no controller configured")
        reply: controller_pb2.NodeNetwork = await self._stub.GetNodeNetwork(
            controller_pb2.GetNodeNetworkRequest(node=self.node), timeout=timeout
        )
        return reply
