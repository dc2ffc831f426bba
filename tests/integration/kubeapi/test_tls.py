"""Optional HTTPS: the kubeconfig trusts the server's private CA."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from kubernetes_asyncio import client

from sandbox.kubeapi.testing import running_kubeapi

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")


async def test_https_with_kubeconfig_ca(tmp_path: Path) -> None:
    async with running_kubeapi(tmp_path, tls=True) as (srv, api_client):
        assert srv.url.startswith("https://127.0.0.1:")
        core = client.CoreV1Api(api_client)
        assert "default" in {n.metadata.name for n in (await core.list_namespace()).items}
        if shutil.which("kubectl"):
            proc = await asyncio.create_subprocess_exec(
                "kubectl",
                "--kubeconfig",
                str(srv.kubeconfig_path),
                "--cache-dir",
                str(tmp_path / "kcache"),
                "get",
                "ns",
                "kube-system",
                "-o",
                "name",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(proc.communicate(), 30)
            assert proc.returncode == 0, err
            assert out.decode().strip() == "namespace/kube-system"
    ca = (tmp_path / "kubeapi" / "tls" / "ca.crt").read_bytes()
    # a restart keeps the same CA, so existing kubeconfigs stay valid
    async with running_kubeapi(tmp_path, tls=True) as (srv, api_client):
        assert (tmp_path / "kubeapi" / "tls" / "ca.crt").read_bytes() == ca
        assert (await client.CoreV1Api(api_client).read_namespace("default")).metadata.name
