"""kubectl (the real binary) against the embedded server."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest
from kubernetes_asyncio import client

from sandbox.kubeapi import KubeApiServer

Pair = tuple[KubeApiServer, client.ApiClient]

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")

MANIFEST = """
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  nodeName: node-a
  containers:
  - name: c
    image: busybox
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  k: v
"""

CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: subnets.kovn.io
spec:
  group: kovn.io
  scope: Cluster
  names: {plural: subnets, singular: subnet, kind: Subnet}
  versions:
  - name: v1
    served: true
    storage: true
    additionalPrinterColumns:
    - {name: CIDR, type: string, jsonPath: .spec.cidrBlock}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              cidrBlock: {type: string, pattern: '^[0-9./]+$'}
"""


async def kubectl(
    srv: KubeApiServer, tmp: Path, *args: str, stdin: str = ""
) -> tuple[int, str, str]:
    cmd = [
        "kubectl",
        "--kubeconfig",
        str(srv.kubeconfig_path),
        "--cache-dir",
        str(tmp / "kcache"),
        *args,
    ]
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_kubectl_create_get_label_annotate_delete(
    kapi: Pair, core: client.CoreV1Api, tmp_path: Path
) -> None:
    srv, _ = kapi
    rc, out, err = await kubectl(srv, tmp_path, "create", "-f", "-", stdin=MANIFEST)
    assert rc == 0, err
    assert "pod/web created" in out and "configmap/settings created" in out
    await core.patch_namespaced_pod_status(
        "web", "default", {"status": {"phase": "Running", "podIP": "10.16.0.7"}}
    )

    rc, out, err = await kubectl(srv, tmp_path, "get", "pods", "-o", "wide")
    assert rc == 0, err
    header, row = out.splitlines()[:2]
    assert header.split()[:7] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    cells = row.split()
    assert (
        cells[0] == "web"
        and cells[2] == "Running"
        and cells[5] == "10.16.0.7"
        and cells[6] == "node-a"
    )

    rc, out, err = await kubectl(srv, tmp_path, "label", "pod", "web", "tier=frontend")
    assert rc == 0, err
    rc, out, err = await kubectl(srv, tmp_path, "annotate", "pod", "web", "kovn.io/note=hello")
    assert rc == 0, err
    p = await core.read_namespaced_pod("web", "default")
    assert p.metadata.labels == {"app": "web", "tier": "frontend"}
    assert p.metadata.annotations == {"kovn.io/note": "hello"}

    rc, out, err = await kubectl(srv, tmp_path, "get", "pods", "-l", "tier=frontend", "-o", "name")
    assert rc == 0 and out.strip() == "pod/web", err

    rc, out, err = await kubectl(srv, tmp_path, "delete", "configmap", "settings")
    assert rc == 0 and 'configmap "settings" deleted' in out, err
    rc, out, err = await kubectl(srv, tmp_path, "get", "configmap", "settings")
    assert rc != 0 and "NotFound" in err


async def test_kubectl_get_nodes_and_namespaces(
    kapi: Pair, core: client.CoreV1Api, tmp_path: Path
) -> None:
    srv, _ = kapi
    await core.create_node({"metadata": {"name": "node-a"}})
    await core.patch_node_status(
        "node-a",
        {
            "status": {
                "conditions": [{"type": "Ready", "status": "True"}],
                "addresses": [{"type": "InternalIP", "address": "172.18.0.2"}],
            }
        },
    )
    rc, out, err = await kubectl(srv, tmp_path, "get", "nodes", "-o", "wide")
    assert rc == 0, err
    header, row = out.splitlines()[:2]
    assert header.split()[:6] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP"]
    assert row.split()[1] == "Ready" and "172.18.0.2" in row.split()
    rc, out, err = await kubectl(srv, tmp_path, "get", "ns")
    assert rc == 0 and "kube-system" in out and "Active" in out, err


async def test_kubectl_crd_printer_columns_and_validation(kapi: Pair, tmp_path: Path) -> None:
    srv, _ = kapi
    rc, out, err = await kubectl(srv, tmp_path, "create", "-f", "-", stdin=CRD)
    assert rc == 0, err
    head = "apiVersion: kovn.io/v1\nkind: Subnet\n"
    ok = head + "metadata: {name: s1}\nspec: {cidrBlock: 10.0.0.0/24}\n"
    rc, out, err = await kubectl(srv, tmp_path, "create", "-f", "-", stdin=ok)
    assert rc == 0, err
    rc, out, err = await kubectl(srv, tmp_path, "get", "subnets")
    assert rc == 0, err
    assert out.split() == ["NAME", "CIDR", "s1", "10.0.0.0/24"]
    bad = head + "metadata: {name: s2}\nspec: {cidrBlock: nope}\n"
    rc, out, err = await kubectl(srv, tmp_path, "create", "-f", "-", stdin=bad)
    assert rc != 0
    assert "spec.cidrBlock: Invalid value" in err
    unknown = head + "metadata: {name: s3}\nspec: {cidrBlock: 10.0.0.0/8, extra: 1}\n"
    rc, out, err = await kubectl(srv, tmp_path, "create", "-f", "-", stdin=unknown)
    assert rc != 0 and 'unknown field "spec.extra"' in err


MANIFESTS = Path(__file__).resolve().parents[3] / "manifests"


@pytest.mark.skipif(not (MANIFESTS / "kustomization.yaml").exists(), reason="no manifests")
async def test_kubectl_apply_and_delete_kovn_manifests(kapi: Pair, tmp_path: Path) -> None:
    """kovn's own install manifests apply, re-apply and delete cleanly."""
    srv, _ = kapi
    for _ in range(2):  # create, then the client-side apply patch path
        rc, out, err = await kubectl(srv, tmp_path, "apply", "-k", str(MANIFESTS))
        assert rc == 0, err
    assert "customresourcedefinition.apiextensions.k8s.io/subnets.kovn.io" in out
    rc, out, err = await kubectl(srv, tmp_path, "delete", "-k", str(MANIFESTS))
    assert rc == 0, err
