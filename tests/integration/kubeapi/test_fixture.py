"""The importable fixture other test suites use."""

from __future__ import annotations

from kubernetes_asyncio import client

from sandbox.kubeapi import KubeApiServer
from sandbox.kubeapi.testing import kubeapi  # noqa: F401  (the fixture under test)


async def test_kubeapi_fixture(kubeapi: tuple[KubeApiServer, client.ApiClient]) -> None:  # noqa: F811
    srv, api_client = kubeapi
    assert srv.url.startswith("http://127.0.0.1:")
    ns = await client.CoreV1Api(api_client).read_namespace("kube-system")
    assert ns.status.phase == "Active"
