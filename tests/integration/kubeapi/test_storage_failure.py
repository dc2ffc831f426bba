"""When the disk refuses a commit, the failed writes are errors and no
further write is accepted (memory would otherwise run ahead of disk)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiException

from sandbox.kubeapi.testing import running_kubeapi

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "kapi-small", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


async def test_full_disk_fails_writes_then_refuses_them(small_disk: Path) -> None:
    async with running_kubeapi(small_disk) as (_, api_client):
        core = client.CoreV1Api(api_client)
        blob = "x" * 200_000
        failed = None
        for i in range(40):
            try:
                await core.create_namespaced_config_map(
                    "default", {"metadata": {"name": f"big{i}"}, "data": {"b": blob}}
                )
            except ApiException as e:
                failed = e
                break
        assert failed is not None and failed.status == 500
        with pytest.raises(ApiException) as ei:
            await core.create_namespaced_config_map("default", {"metadata": {"name": "after"}})
        assert ei.value.status == 503
        assert json.loads(ei.value.body)["reason"] == "ServiceUnavailable"
        # reads still answer
        assert (await core.read_namespace("default")).metadata.name == "default"
