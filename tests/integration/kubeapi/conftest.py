"""Fixtures for the embedded API server's tests: a fresh server per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kubernetes_asyncio import client

from sandbox.kubeapi import KubeApiServer
from sandbox.kubeapi.testing import running_kubeapi


@pytest.fixture
async def kapi(tmp_path: Path) -> AsyncIterator[tuple[KubeApiServer, client.ApiClient]]:
    async with running_kubeapi(tmp_path, bookmark_interval=0.2) as pair:
        yield pair


@pytest.fixture
def core(kapi: tuple[KubeApiServer, client.ApiClient]) -> client.CoreV1Api:
    return client.CoreV1Api(kapi[1])
