"""Real components for controller integration tests.

OVN central (NB + SB + northd, sandbox.ovn), the embedded Kubernetes API
(in-process), the ipam service as a subprocess on a unix socket, and
controller replicas run in-process behind their own gRPC servers so tests can
look at their counters (rows written, leadership).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import yaml

from sandbox.kubeapi import KubeApiServer
from sandbox.ovn import OvnCentral
from sandbox.testbed import procs
from sandbox.testbed.procs import ROOT
from services.api.controller.v1 import controller_pb2_grpc
from services.common.health import Health
from services.common.interceptors import ChassisInterceptor, ServerState
from services.common.kube import KubeClient, KubeError, Obj, connect, resource_path
from services.controller.config import ControllerConfig
from services.controller.service import ControllerService

CRDS = ROOT / "manifests" / "crds"


@dataclass
class IpamProcess:
    proc: subprocess.Popen[bytes]
    target: str
    log: Path

    def stop(self) -> None:
        procs.stop(self.proc)


def start_ipam(run_dir: Path) -> IpamProcess:
    run_dir.mkdir(parents=True, exist_ok=True)
    sock = run_dir / "ipam.sock"
    ready = run_dir / "ipam.ready"
    log = run_dir / "ipam.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.ipam.main",
            "--socket",
            str(sock),
            "--store",
            "sqlite",
            "--sqlite-path",
            str(run_dir / "ipam.db"),
            "--cooldown-seconds",
            "0",
            "--ready-file",
            str(ready),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        procs.wait_ready_file(ready, proc=proc)
    except (TimeoutError, AssertionError):
        procs.stop(proc, signal.SIGKILL)
        raise RuntimeError(f"ipam did not start: {log.read_text()[-2000:]}") from None
    return IpamProcess(proc, f"unix:{sock}", log)


async def install_crds(kube: KubeClient) -> None:
    path = resource_path("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    for f in sorted(CRDS.glob("*.kovn.io.yaml")):
        with contextlib.suppress(KubeError):
            await kube.create(path, yaml.safe_load(f.read_text()))


@dataclass
class Replica:
    service: ControllerService
    server: grpc.aio.Server
    address: str
    channel: grpc.aio.Channel
    stub: Any = field(init=False)

    def __post_init__(self) -> None:
        self.stub = controller_pb2_grpc.ControllerStub(self.channel)  # type: ignore[no-untyped-call]

    @property
    def ctx(self) -> Any:
        return self.service.ctx

    async def stop(self) -> None:
        await self.channel.close(None)
        await self.server.stop(0)
        await self.service.stop()


@dataclass
class Cluster:
    tmp: Path
    kubeapi: KubeApiServer
    kube: KubeClient
    ovn: OvnCentral
    ipam: IpamProcess
    replicas: list[Replica] = field(default_factory=list)

    def config(self, identity: str, **overrides: Any) -> ControllerConfig:
        values: dict[str, Any] = {
            "listen": "127.0.0.1:0",
            "kubeconfig": str(self.kubeapi.kubeconfig_path),
            "ipam": self.ipam.target,
            "nb": self.ovn.nb_remote,
            "identity": identity,
            "lease_namespace": "kube-system",
            "lease_duration": 3.0,
            "renew_deadline": 2.0,
            "retry_period": 0.3,
            "workers": 16,
            "resync_period": 0.0,
            "gc_period": 0.0,
            "usage_period": 0.2,
        }
        values.update(overrides)
        return ControllerConfig(**values)

    async def start_replica(self, identity: str = "r1", **overrides: Any) -> Replica:
        server = grpc.aio.server(interceptors=[ChassisInterceptor(ServerState("controller"))])
        port = server.add_insecure_port("127.0.0.1:0")
        address = f"127.0.0.1:{port}"
        cfg = self.config(identity, advertise=address, **overrides)
        service = ControllerService(cfg)
        names = service.register(server)
        await server.start()
        await service.start(Health("controller", names))
        replica = Replica(service, server, address, grpc.aio.insecure_channel(address))
        self.replicas.append(replica)
        return replica

    async def stop_replica(self, replica: Replica) -> None:
        self.replicas.remove(replica)
        await replica.stop()

    def nbctl(self, *args: str) -> str:
        out = subprocess.run(
            ["ovn-nbctl", f"--db={self.ovn.nb_remote}", *args],
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout

    # -- Kubernetes objects ------------------------------------------------------

    async def node(self, name: str) -> Obj:
        return await self.kube.create(
            resource_path("", "v1", "nodes"), {"metadata": {"name": name}}
        )

    async def namespace(self, name: str) -> Obj:
        return await self.kube.create(
            resource_path("", "v1", "namespaces"), {"metadata": {"name": name}}
        )

    async def pod(
        self, namespace: str, name: str, node: str = "n1", annotations: dict[str, str] | None = None
    ) -> Obj:
        body = {
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
        }
        return await self.kube.create(resource_path("", "v1", "pods", namespace), body)

    async def delete_pod(self, namespace: str, name: str) -> None:
        # gracePeriodSeconds=0: what the kubelet sends once the pod stopped.
        await self.kube.request(
            "DELETE",
            resource_path("", "v1", "pods", namespace, name),
            body={"gracePeriodSeconds": 0},
        )

    async def subnet(self, name: str, **spec: Any) -> Obj:
        return await self._kovn_object("Subnet", "subnets", name, spec)

    async def ippool(self, name: str, **spec: Any) -> Obj:
        return await self._kovn_object("IPPool", "ippools", name, spec)

    async def _kovn_object(self, kind: str, plural: str, name: str, spec: dict[str, Any]) -> Obj:
        body = {"apiVersion": "kovn.io/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}
        return await self.kube.create(resource_path("kovn.io", "v1", plural), body)

    async def get_pod(self, namespace: str, name: str) -> Obj:
        return await self.kube.get(resource_path("", "v1", "pods", namespace, name))

    async def events_for(self, namespace: str, name: str) -> list[Obj]:
        items, _ = await self.kube.list(resource_path("", "v1", "events", namespace))
        return [e for e in items if (e.get("involvedObject") or {}).get("name") == name]


@contextlib.asynccontextmanager
async def running_cluster(tmp: Path) -> AsyncIterator[Cluster]:
    """Every piece is stopped on the way out, each on its own: one failing
    teardown step (or a test that replaced a piece) never leaks the others."""
    async with contextlib.AsyncExitStack() as stack:
        ovn = OvnCentral(tmp / "ovn")
        stack.push_async_callback(asyncio.to_thread, ovn.stop)
        await asyncio.to_thread(ovn.start)
        holder: dict[str, Any] = {}

        async def stop_ipam() -> None:
            for proc in (
                holder.get("first"),
                holder["cluster"].ipam if "cluster" in holder else None,
            ):
                if proc is not None:
                    await asyncio.to_thread(proc.stop)

        stack.push_async_callback(stop_ipam)
        holder["first"] = ipam = await asyncio.to_thread(start_ipam, tmp / "ipam")
        kubeapi = KubeApiServer(tmp / "kubeapi")

        async def stop_kubeapi() -> None:
            # A test may have replaced the server (restarted it on the same port).
            current = holder["cluster"].kubeapi if "cluster" in holder else kubeapi
            await current.stop()

        await kubeapi.start()
        stack.push_async_callback(stop_kubeapi)
        kube = KubeClient(await connect(str(kubeapi.kubeconfig_path)))
        stack.push_async_callback(kube.close)
        await install_crds(kube)
        cluster = holder["cluster"] = Cluster(tmp, kubeapi, kube, ovn, ipam)

        async def stop_replicas() -> None:
            for replica in list(cluster.replicas):
                with contextlib.suppress(Exception):
                    await cluster.stop_replica(replica)

        stack.push_async_callback(stop_replicas)
        yield cluster


async def until(predicate: Any, timeout: float = 20.0, what: str = "condition") -> None:
    """For state only visible in another process (NB rows, API objects): poll with a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not hold within {timeout}s")
        await asyncio.sleep(0.05)


__all__ = ["Cluster", "Replica", "json", "os", "running_cluster", "until"]
