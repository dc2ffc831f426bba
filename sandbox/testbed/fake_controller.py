"""A stand-in for the controller's GetPodNetwork/GetNodeNetwork (allowed by
issue 5 until the real controller lands): the test registers each pod's
network, creating its logical switch port in a real OVN NB, and the server
answers once the pod is registered, waiting on a condition like the real
controller waits on its event."""

from __future__ import annotations

import threading
from concurrent import futures

import grpc

from services.api.controller.v1 import controller_pb2, controller_pb2_grpc


class FakeController(controller_pb2_grpc.ControllerServicer):
    def __init__(self) -> None:
        self._pods: dict[tuple[str, str, str], controller_pb2.PodNetwork] = {}
        self._nodes: dict[str, controller_pb2.NodeNetwork] = {}
        self._cond = threading.Condition()
        self.calls = 0
        # Pods the controller refuses: name -> (status code, message).
        self.refuse: dict[str, tuple[grpc.StatusCode, str]] = {}
        self._server: grpc.Server | None = None
        self._stopping = False

    def add_pod(self, pn: controller_pb2.PodNetwork) -> None:
        with self._cond:
            self._pods[(pn.namespace, pn.name, pn.nic or "eth0")] = pn
            self._cond.notify_all()

    def add_node(self, nn: controller_pb2.NodeNetwork) -> None:
        with self._cond:
            self._nodes[nn.node] = nn
            self._cond.notify_all()

    def GetPodNetwork(
        self, request: controller_pb2.GetPodNetworkRequest, context: grpc.ServicerContext
    ) -> controller_pb2.PodNetwork:
        key = (request.namespace, request.name, request.nic or "eth0")
        if request.name in self.refuse:
            code, message = self.refuse[request.name]
            context.abort(code, message)
        with self._cond:
            self.calls += 1
            remaining = context.time_remaining()
            self._cond.wait_for(
                lambda: key in self._pods or self._stopping,
                timeout=None if remaining is None else remaining,
            )
            if self._stopping:
                context.abort(grpc.StatusCode.UNAVAILABLE, "controller stopping")
            if key not in self._pods:
                context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, f"pod {key} not ready")
            return self._pods[key]

    def GetNodeNetwork(
        self, request: controller_pb2.GetNodeNetworkRequest, context: grpc.ServicerContext
    ) -> controller_pb2.NodeNetwork:
        with self._cond:
            nn = self._nodes.get(request.node)
        if nn is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"node {request.node} unknown")
        assert nn is not None
        return nn

    def serve(self, socket_path: str) -> None:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
        controller_pb2_grpc.add_ControllerServicer_to_server(self, server)  # type: ignore[no-untyped-call]
        server.add_insecure_port(f"unix:{socket_path}")
        server.start()
        self._server = server

    def stop(self) -> None:
        with self._cond:  # release handlers still waiting for a pod
            self._stopping = True
            self._cond.notify_all()
        if self._server is not None:
            self._server.stop(0).wait()


def pod_network(
    name: str,
    ip: str,
    mac: str,
    *,
    switch: str,
    namespace: str = "default",
    gateway: str = "",
    ingress: int = 0,
    egress: int = 0,
    mtu: int = 1400,
) -> controller_pb2.PodNetwork:
    return controller_pb2.PodNetwork(
        namespace=namespace,
        name=name,
        nic="eth0",
        logical_port=f"{namespace}.{name}",
        logical_switch=switch,
        mac=mac,
        mtu=mtu,
        ips=[controller_pb2.IPConfig(address=ip, gateway=gateway)],
        qos=controller_pb2.QoS(ingress_rate_bps=ingress, egress_rate_bps=egress),
    )
