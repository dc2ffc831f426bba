"""Fixtures for dataplane integration tests (the node itself is
sandbox.testbed.dataplane)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from sandbox.testbed.dataplane import CniResult, Env, node_env
from sandbox.testbed.fake_controller import FakeController
from services.api.controller.v1 import controller_pb2

__all__ = ["CniResult", "Env"]

PRIMARY_NIC = "eth0"


def default_routes(pn: controller_pb2.PodNetwork) -> list[controller_pb2.Route]:
    """A default route per family through that family's (first) gateway."""
    routes: dict[bool, controller_pb2.Route] = {}
    for ip in pn.ips:
        v6 = ":" in ip.address
        if ip.gateway and v6 not in routes:
            dst = "::/0" if v6 else "0.0.0.0/0"
            routes[v6] = controller_pb2.Route(destination=dst, gateway=ip.gateway)
    return list(routes.values())


class _SendsRoutes:
    """The stand-in answers like the real controller (services/controller
    servicer): every NIC with its complete routes. A pod registered without
    routes (the harness's pod_network sends none) gets, on its primary NIC
    only, a default route per family via that family's gateway; the
    dataplane makes up no routes of its own."""

    def __init__(self, ctrl: FakeController) -> None:
        self._register = ctrl.add_pod

    def __call__(self, pn: controller_pb2.PodNetwork) -> None:
        if not pn.routes and (pn.nic or PRIMARY_NIC) == PRIMARY_NIC:
            pn.routes.extend(default_routes(pn))
        self._register(pn)


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    with node_env() as e:
        e.ctrl.add_pod = _SendsRoutes(e.ctrl)  # type: ignore[method-assign]
        yield e
