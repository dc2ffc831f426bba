"""The CRD manifests, served by the embedded API: schema validation, columns."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sandbox.kubeapi import KubeApiServer
from services.common.kube import KubeClient, KubeError, connect
from tests.integration.controller.harness import install_crds


async def test_crd_schemas_reject_bad_objects_and_kubectl_shows_columns(tmp_path: Path) -> None:
    srv = KubeApiServer(tmp_path / "api")
    await srv.start()
    kube = KubeClient(await connect(str(srv.kubeconfig_path)))
    try:
        await install_crds(kube)
        good = {
            "apiVersion": "kovn.io/v1",
            "kind": "Subnet",
            "metadata": {"name": "s1"},
            "spec": {"cidrBlock": "10.20.0.0/16", "gatewayType": "distributed", "mtu": 1400},
        }
        await kube.create("/apis/kovn.io/v1/subnets", good)
        for spec, path in [
            ({"cidrBlock": "10.21.0.0/16", "gatewayType": "sideways"}, "spec.gatewayType"),
            ({"cidrBlock": "not-a-cidr"}, "spec.cidrBlock"),
            ({"cidrBlock": "10.22.0.0/16", "mtu": 9}, "spec.mtu"),
            ({"gateway": "10.0.0.1"}, "spec.cidrBlock"),
        ]:
            bad = {**good, "metadata": {"name": "bad"}, "spec": spec}
            with pytest.raises(KubeError) as err:
                await kube.create("/apis/kovn.io/v1/subnets", bad)
            assert err.value.status == 422 and path in err.value.message
        with pytest.raises(KubeError) as err:
            await kube.create(
                "/apis/kovn.io/v1/ippools",
                {
                    "apiVersion": "kovn.io/v1",
                    "kind": "IPPool",
                    "metadata": {"name": "p"},
                    "spec": {"subnet": "s1"},
                },
            )
        assert err.value.status == 422 and "spec.ips" in err.value.message
        proc = await asyncio.create_subprocess_exec(
            "kubectl",
            "--kubeconfig",
            str(srv.kubeconfig_path),
            "get",
            "subnets",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, stderr.decode()
        text = stdout.decode()
        header = text.splitlines()[0].split()
        assert header[:4] == ["NAME", "CIDR", "GATEWAY", "DEFAULT"]
        assert "10.20.0.0/16" in text
    finally:
        await kube.close()
        await srv.stop()
