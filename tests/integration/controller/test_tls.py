"""Two controller processes under mutual TLS: a follower forwards to the leader."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sandbox.testbed.procs import ROOT, wait_ready_file
from services.api.controller.v1 import controller_pb2, controller_pb2_grpc
from services.common.client import channel
from tests.integration.controller.harness import Cluster, running_cluster, until

pytestmark = pytest.mark.slow

LEASE = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kovn-controller"


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_pki(d: Path) -> None:
    """A CA and one certificate for 127.0.0.1 used by replicas and clients."""
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"), "-days", "1",
             "-subj", "/CN=kctl-test-ca")  # fmt: skip
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", str(d / "tls.key"), "-out", str(d / "tls.csr"),
             "-subj", "/CN=kctl")  # fmt: skip
    (d / "ext.cnf").write_text(
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n"
    )
    _openssl("x509", "-req", "-in", str(d / "tls.csr"), "-CA", str(d / "ca.pem"),
             "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-out", str(d / "tls.pem"),
             "-days", "1", "-extfile", str(d / "ext.cnf"))  # fmt: skip


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with running_cluster(tmp_path) as c:
        yield c


async def test_follower_forwards_to_leader_over_mutual_tls(
    cluster: Cluster, tmp_path: Path
) -> None:
    pki = tmp_path / "pki"
    pki.mkdir()
    await asyncio.to_thread(make_pki, pki)
    await cluster.node("n1")
    procs: list[subprocess.Popen[bytes]] = []

    async def start(identity: str) -> str:
        ready = tmp_path / f"{identity}.ready"
        proc = await asyncio.to_thread(
            subprocess.Popen,
            [sys.executable, "-m", "services.controller.main", "--listen", "127.0.0.1:0",
             "--ready-file", str(ready), "--kubeconfig", str(cluster.kubeapi.kubeconfig_path),
             "--ipam", cluster.ipam.target, "--nb", cluster.ovn.nb_remote, "--identity", identity,
             "--tls-cert", str(pki / "tls.pem"), "--tls-key", str(pki / "tls.key"),
             "--tls-client-ca", str(pki / "ca.pem"), "--lease-duration", "3",
             "--renew-deadline", "2", "--retry-period", "0.3", "--log-level", "warning"],
            cwd=ROOT, stdout=(tmp_path / f"{identity}.log").open("wb"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        procs.append(proc)
        await asyncio.to_thread(wait_ready_file, ready)
        return str(json.loads(ready.read_text())["grpc"])

    try:
        await start("lead")

        async def holder(name: str) -> bool:
            try:
                lease = await cluster.kube.get(LEASE)
            except Exception:
                return False
            ok = lease["spec"].get("holderIdentity") == name
            return ok and bool(
                lease["metadata"].get("annotations", {}).get("kovn.io/leader-address")
            )

        await until(lambda: holder("lead"), what="lead holds the Lease with its address")
        follower = await start("follow")
        await cluster.pod("default", "secure")
        ch = channel(
            follower, ca=str(pki / "ca.pem"), cert=str(pki / "tls.pem"), key=str(pki / "tls.key")
        )
        try:
            stub = controller_pb2_grpc.ControllerStub(ch)  # type: ignore[no-untyped-call]
            net = await stub.GetPodNetwork(
                controller_pb2.GetPodNetworkRequest(namespace="default", name="secure"), timeout=20
            )
        finally:
            await ch.close(None)
        assert net.logical_port == "secure.default" and net.ips
        lease = await cluster.kube.get(LEASE)
        assert (
            lease["spec"]["holderIdentity"] == "lead"
        )  # answered by forwarding, not by taking over
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                await asyncio.to_thread(proc.wait, 15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
