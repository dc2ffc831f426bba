"""Test helpers: run the embedded API server in-process for a test.

    async with running_kubeapi(tmp_path) as (srv, api_client):
        v1 = kubernetes_asyncio.client.CoreV1Api(api_client)

The ApiClient is configured from the server's kubeconfig, the same way kovn
services load theirs, so a test also proves the kubeconfig works.

Or as a pytest fixture: `from sandbox.kubeapi.testing import kubeapi` in a
conftest.py, then take `kubeapi` (a (server, ApiClient) pair) in a test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client, config

from .server import KubeApiServer


@asynccontextmanager
async def running_kubeapi(
    tmp_path: Path, **server_kwargs: Any
) -> AsyncIterator[tuple[KubeApiServer, client.ApiClient]]:
    """Start a server with state under tmp_path/kubeapi; stop it afterwards."""
    srv = KubeApiServer(Path(tmp_path) / "kubeapi", **server_kwargs)
    await srv.start()
    try:
        cfg = client.Configuration()
        await config.load_kube_config(
            config_file=str(srv.kubeconfig_path), client_configuration=cfg
        )
        api_client = client.ApiClient(configuration=cfg)
        try:
            yield srv, api_client
        finally:
            await api_client.close()
    finally:
        await srv.stop()


@pytest.fixture
async def kubeapi(tmp_path: Path) -> AsyncIterator[tuple[KubeApiServer, client.ApiClient]]:
    """A fresh embedded API server for one test, and a client for it."""
    async with running_kubeapi(tmp_path) as pair:
        yield pair
