"""The dataplane's view of the controller: a pod NIC's network, the node's
join port. A failed GetPodNetwork becomes the dataplane error a runtime acts
on (services.dataplane.errors): the pod is unknown, its network refused, or
the controller is not answering now (retryable)."""

from __future__ import annotations

import grpc

from services.api.controller.v1 import controller_pb2, controller_pb2_grpc
from services.common.client import channel
from services.common.errors import DeadlineExceeded, KovnError, Unavailable
from services.dataplane.errors import PodNetworkRefused, PodNotFound


def _pod_network_error(err: grpc.aio.AioRpcError, pod: str, target: str) -> KovnError:
    code, details = err.code(), err.details() or ""
    if code == grpc.StatusCode.NOT_FOUND:
        return PodNotFound(f"pod {pod}: {details}")
    if code in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT):
        return PodNetworkRefused(f"pod {pod}: {details}")
    # Anything else is the controller not answering now: the runtime retries.
    message = f"controller {target}: {code.name}: {details}"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceeded(message)
    return Unavailable(message)


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
            raise Unavailable("no controller configured (--controller)")
        request = controller_pb2.GetPodNetworkRequest(
            namespace=namespace, name=name, nic=nic, pod_uid=pod_uid, node=self.node
        )
        pod = f"{namespace}/{name}"
        try:
            reply: controller_pb2.PodNetwork = await self._stub.GetPodNetwork(
                request, timeout=timeout, wait_for_ready=True
            )
        except grpc.aio.AioRpcError as err:
            raise _pod_network_error(err, pod, self.target) from None
        return reply

    async def node_network(self, timeout: float) -> controller_pb2.NodeNetwork:
        if self._stub is None:
            raise RuntimeError("no controller configured")
        reply: controller_pb2.NodeNetwork = await self._stub.GetNodeNetwork(
            controller_pb2.GetNodeNetworkRequest(node=self.node), timeout=timeout
        )
        return reply
