"""A kubelet stand-in: registers its Node, wires pods through the CNI plugin, runs them.

There is no kubelet or containerd here, yet kovn-cni must be driven the way
they drive it. For each pod bound to its node this creates the pod's netns,
runs the node's CNI chain (ADD, cached result, DEL with prevResult, the
second DEL with no netns), runs the pod's containers as processes in that
netns (sandbox.runtime: init containers, restarts, probes, status), and on
deletion stops them within the grace period before DEL and confirming the
deletion. Every pod gets its own asyncio worker woken by watch events, so a
burst of pods is plugged concurrently and nothing polls. The kubelet's HTTP
endpoint (logs, exec) is on loopback, advertised in the Node's
status.daemonEndpoints as a real kubelet's is.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from sandbox import netns, workers
from sandbox.cniexec import CniConfigError, CniError, CniRunner
from sandbox.layout import Layout, NodeLayout, write_atomic
from sandbox.runtime import logs as podlogs
from sandbox.runtime.pod import Env as RuntimeEnv
from sandbox.runtime.pod import PodRuntime
from sandbox.runtime.server import KubeletServer
from services.common.kube import KubeClient, KubeError
from services.common.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

IFNAME = "eth0"
KUBELET_VERSION = "v1.32.0-kovn-sandbox"
BACKOFF_START = 0.5
BACKOFF_MAX = 10.0
LEASE_SECONDS = 40
LEASE_RENEW_SECONDS = 10.0


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_now() -> str:
    """Kubernetes MicroTime, as Lease.spec.renewTime wants it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def pod_path(pod: dict[str, Any], sub: str = "") -> str:
    md = pod["metadata"]
    return f"/api/v1/namespaces/{md['namespace']}/pods/{md['name']}{sub}"


class Kubelet:
    """One node's kubelet: Node registration and one worker per bound pod."""

    def __init__(self, kube: KubeClient, layout: Layout, node: NodeLayout) -> None:
        self.kube = kube
        self.layout = layout
        self.node = node
        self.cni = CniRunner(
            layout.cni_conf_dir(node.name),
            layout.cni_bin_dir(node.name),
            layout.cni_cache_dir(node.name),
            host_netns=node.netns,
        )
        self.records_dir = layout.pods_dir(node.name)
        self.records_dir.mkdir(parents=True, exist_ok=True)
        # The records live on disk (for `down` and restarts) and are read
        # from memory: a burst would otherwise open a file per lookup.
        self.records: dict[str, dict[str, Any]] = {}
        for f in self.records_dir.glob("*.json"):
            try:
                self.records[f.stem] = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
        self.workers: dict[str, PodWorker] = {}
        self.log = log.bind(node=node.name)
        self.logs_root = layout.node_dir(node.name) / "pod-logs"
        self.run_root = layout.node_dir(node.name) / "pod-run"
        self.server = KubeletServer(self.find_runtime)

    def find_runtime(self, namespace: str, name: str) -> PodRuntime | None:
        for w in self.workers.values():
            md = w.pod["metadata"]
            if md["namespace"] == namespace and md["name"] == name and w.runtime is not None:
                return w.runtime
        return None

    # -- node ----------------------------------------------------------------

    async def register(self) -> None:
        """Create (or refresh) the Node object with its address and Ready condition."""
        name = self.node.name
        if self.server.runner is None:
            await self.server.start()
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "kovn.io/sandbox": self.layout.name,
                },
            },
            "spec": {"podCIDR": self.node.pod_cidr, "podCIDRs": [self.node.pod_cidr]},
        }
        try:
            await self.kube.create("/api/v1/nodes", body)
        except KubeError as e:
            if e.status != 409:
                raise
        ts = now()
        status = {
            "status": {
                "addresses": [
                    {"type": "InternalIP", "address": self.node.underlay_ip},
                    {"type": "Hostname", "address": name},
                ],
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "kovn sandbox kubelet is posting ready status",
                        "lastHeartbeatTime": ts,
                        "lastTransitionTime": ts,
                    }
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": self.server.port}},
                "capacity": {"cpu": "2", "memory": "8Gi", "pods": "250"},
                "allocatable": {"cpu": "2", "memory": "8Gi", "pods": "250"},
                "nodeInfo": {
                    "kubeletVersion": KUBELET_VERSION,
                    "containerRuntimeVersion": "kovn-sandbox://0.1",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                    "osImage": "kovn sandbox",
                    "kernelVersion": os.uname().release,
                    "kubeProxyVersion": "",
                    "machineID": "",
                    "systemUUID": "",
                    "bootID": "",
                },
            }
        }
        await self.kube.strategic_merge_patch(f"/api/v1/nodes/{name}/status", status)
        self.log.info("node registered", ip=self.node.underlay_ip)

    async def heartbeat(self) -> None:
        """Keep the node's Lease in kube-node-lease fresh, as kubelets do."""
        name = self.node.name
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}"
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS,
                     "renewTime": micro_now()},
        }  # fmt: skip
        try:
            await self.kube.create(path.rsplit("/", 1)[0], body)
        except KubeError as e:
            if e.status != 409:
                self.log.warning("node lease not created", error=str(e))
        while True:
            await asyncio.sleep(LEASE_RENEW_SECONDS)
            try:
                await self.kube.strategic_merge_patch(path, {"spec": {"renewTime": micro_now()}})
            except (KubeError, aiohttp.ClientError, OSError) as e:
                self.log.warning("node lease not renewed", error=str(e))

    # -- pods ----------------------------------------------------------------

    def on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        """Route a watch event to the pod's worker (starting one if needed)."""
        uid = pod["metadata"]["uid"]
        worker = self.workers.get(uid)
        if worker is None:
            if kind == "DELETED" and uid not in self.records:
                return
            worker = PodWorker(self, pod)
            self.workers[uid] = worker
            worker.task = asyncio.create_task(worker.run(), name=f"pod-{uid}")
            worker.task.add_done_callback(lambda t: self._worker_done(uid, t))
        worker.update(kind, pod)

    def _worker_done(self, uid: str, task: asyncio.Task[None]) -> None:
        if self.workers.get(uid) is not None and self.workers[uid].task is task:
            del self.workers[uid]
        if not task.cancelled() and task.exception() is not None:
            # A bug, not a CNI or API failure (those are handled in the worker).
            self.log.error("pod worker crashed", uid=uid, exc_info=task.exception())

    def collect_orphans(self, live: set[str]) -> int:
        """Tear down pods recorded on this node that the API no longer has.

        A pod deleted while the agents were down never produces a watch
        event; like the kubelet's sandbox GC, the first listing after a
        (re)start finds them. Returns how many were found.
        """
        found = 0
        for uid in list(self.records):
            if uid in live or uid in self.workers:
                continue
            rec = self.read_record(uid)
            if rec is None:
                continue
            found += 1
            md = {"namespace": rec.get("namespace", ""), "name": rec.get("name", ""), "uid": uid}
            self.on_pod("DELETED", {"metadata": md, "spec": {}})
        return found

    def _record_path(self, uid: str) -> Path:
        return self.records_dir / f"{uid}.json"

    def read_record(self, uid: str) -> dict[str, Any] | None:
        rec = self.records.get(uid)
        return dict(rec) if rec is not None else None

    async def write_record(self, uid: str, rec: dict[str, Any]) -> None:
        """Memory at once, disk (atomically, off the loop) before returning."""
        path = self._record_path(uid)
        text = json.dumps(rec)
        self.records[uid] = dict(rec)
        await workers.pool().run(lambda: write_atomic(path, text))

    async def drop_record(self, uid: str) -> None:
        self.records.pop(uid, None)
        path = self._record_path(uid)
        await workers.pool().run(lambda: path.unlink(missing_ok=True))

    async def close(self) -> None:
        await asyncio.gather(*(cancel_and_wait(w.task) for w in list(self.workers.values())))
        await self.server.close()


class PodWorker:
    """Brings one pod to Running and, once it is deleted, tears it down."""

    def __init__(self, kubelet: Kubelet, pod: dict[str, Any]) -> None:
        self.k = kubelet
        self.pod = pod
        self.uid: str = pod["metadata"]["uid"]
        self.gone = False
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        # (reason, message) -> (Event name, count) of the events recorded so far
        self.events: dict[tuple[str, str], tuple[str, int]] = {}
        md = pod["metadata"]
        self.log = kubelet.log.bind(pod=f"{md['namespace']}/{md['name']}")
        rec = kubelet.read_record(self.uid)
        # A record marked ready survives an agent restart: the pod is wired.
        self.ready = bool(rec and rec.get("ready"))
        self.runtime: PodRuntime | None = None

    def update(self, kind: str, pod: dict[str, Any]) -> None:
        self.pod = pod
        if kind == "DELETED":
            self.gone = True
        elif self.runtime is not None and not pod["metadata"].get("deletionTimestamp"):
            self.runtime.update(pod)
        self.changed.set()

    def start_runtime(self, run: bool = True) -> None:
        """Run the containers of a wired pod (adopting them after a restart);
        run=False: only adopt them, to stop them."""
        rec = self.k.read_record(self.uid) or {}
        md = self.pod["metadata"]
        uid = self.uid

        async def save(containers: dict[str, Any]) -> None:
            cur = self.k.read_record(uid)
            if cur is not None:
                cur["containers"] = containers
                await self.k.write_record(uid, cur)

        async def event(type_: str, reason: str, message: str) -> None:
            await self.event(self.pod, reason, message, type_)

        env = RuntimeEnv(
            kube=self.k.kube,
            node=self.k.node.name,
            host_ip=self.k.node.underlay_ip,
            netns=f"/run/netns/{rec.get('netns') or self.k.node.netns}",
            pod_ips=list(rec.get("ips") or [self.k.node.underlay_ip]),
            log_dir=podlogs.pod_dir(self.k.logs_root, md["namespace"], md["name"], uid),
            run_dir=self.k.run_root / uid,
            save=save,
            event=event,
            sandbox=self.k.layout.name,
        )
        self.runtime = PodRuntime(self.pod, env, rec.get("containers"))
        if run:
            self.runtime.start()

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            if self.runtime is not None:
                # Cancelled (the agents stop): the containers keep running.
                await self.runtime.close()

    async def _run(self) -> None:
        backoff = BACKOFF_START
        while True:
            self.changed.clear()
            pod = self.pod
            if self.gone or pod["metadata"].get("deletionTimestamp"):
                await self.teardown(confirm=not self.gone)
                return
            if not self.ready:
                try:
                    await self.setup(pod)
                    self.ready = True
                    backoff = BACKOFF_START
                except (
                    CniError,
                    CniConfigError,
                    KubeError,
                    aiohttp.ClientError,
                    RuntimeError,
                    OSError,
                ) as e:  # NetnsError is a RuntimeError
                    self.log.warning("pod sandbox failed", error=str(e), retry_in=backoff)
                    await self.event(pod, "FailedCreatePodSandBox", f"{e}")
                    await self.release_sandbox(report=False)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.changed.wait(), backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX)
                    continue
            if self.runtime is None:
                self.start_runtime()
            await self.changed.wait()

    # -- ADD -----------------------------------------------------------------

    def _cni_args(self, pod: dict[str, Any], container_id: str) -> dict[str, str]:
        md = pod["metadata"]
        return {
            "IgnoreUnknown": "1",
            "K8S_POD_NAMESPACE": md["namespace"],
            "K8S_POD_NAME": md["name"],
            "K8S_POD_INFRA_CONTAINER_ID": container_id,
            "K8S_POD_UID": md["uid"],
        }

    async def setup(self, pod: dict[str, Any]) -> None:
        md = pod["metadata"]
        timing: dict[str, int] = {}
        t_start = time.monotonic()
        rec: dict[str, Any] = {
            "namespace": md["namespace"],
            "name": md["name"],
            "uid": self.uid,
            "node": self.k.node.name,
            "ready": False,
        }
        if pod["spec"].get("hostNetwork"):
            rec.update(hostNetwork=True, netns=self.k.node.netns, ips=[self.k.node.underlay_ip])
            await self.k.write_record(self.uid, rec)
        else:
            cid = secrets.token_hex(32)
            ns = f"{self.k.layout.pod_netns_prefix}{cid[:12]}"
            rec.update(hostNetwork=False, netns=ns, containerId=cid, ifname=IFNAME)
            # Written before the netns exists, so `down` finds it even after a crash.
            await self.k.write_record(self.uid, rec)
            t0 = time.monotonic()
            timing["record_ms"] = round((t0 - t_start) * 1000)
            await netns.acreate(ns)
            t1 = time.monotonic()
            result = await self.k.cni.add(cid, f"/run/netns/{ns}", IFNAME, self._cni_args(pod, cid))
            t2 = time.monotonic()
            timing.update(netns_ms=round((t1 - t0) * 1000), cni_ms=round((t2 - t1) * 1000))
            try:
                ips = [str(ip["address"]).split("/")[0] for ip in result.get("ips", [])]
            except (KeyError, TypeError, AttributeError) as e:
                raise CniError("chain", "ADD", 999, f"malformed result {result!r}: {e}") from e
            if not ips:
                raise CniError("chain", "ADD", 999, f"result has no IP addresses: {result!r}")
            rec["ips"] = ips
        rec["ready"] = True
        await self.k.write_record(self.uid, rec)
        timing["total_ms"] = round((time.monotonic() - t_start) * 1000)
        self.log.info("pod running", ips=rec["ips"], netns=rec["netns"], **timing)

    async def event(
        self, pod: dict[str, Any], reason: str, message: str, type_: str = "Warning"
    ) -> None:
        """A Warning (or type_) event; a repeat of the same reason and message bumps the
        first one's count and lastTimestamp, as client-go's event correlator
        does, instead of adding an Event per retry."""
        md = pod["metadata"]
        ts = now()
        path = f"/api/v1/namespaces/{md['namespace']}/events"
        key = (reason, message)
        try:
            seen = self.events.get(key)
            if seen is not None:
                name, count = seen
                try:
                    await self.k.kube.strategic_merge_patch(
                        f"{path}/{name}", {"count": count + 1, "lastTimestamp": ts}
                    )
                    self.events[key] = (name, count + 1)
                    return
                except KubeError as e:
                    if e.status != 404:
                        raise
                    # Expired or deleted meanwhile: start a new one.
            body = {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"generateName": f"{md['name']}.", "namespace": md["namespace"]},
                "involvedObject": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": md["name"],
                    "namespace": md["namespace"],
                    "uid": md["uid"],
                },
                "reason": reason,
                "message": message,
                "type": type_,
                "source": {"component": "kubelet", "host": self.k.node.name},
                "firstTimestamp": ts,
                "lastTimestamp": ts,
                "count": 1,
            }
            created = await self.k.kube.create(path, body)
            self.events[key] = (str(created["metadata"]["name"]), 1)
        except (KubeError, aiohttp.ClientError, OSError) as e:
            self.log.warning("event not recorded", error=str(e))

    # -- DEL -----------------------------------------------------------------

    async def release_sandbox(self, report: bool = True) -> None:
        """DEL with prevResult, remove the netns, DEL again without netns (as containerd).

        report: DEL failures become Warning events (not when cleaning up
        after a failed ADD, whose event already tells the story).
        """
        rec = self.k.read_record(self.uid)
        if rec is None:
            return
        if not rec.get("hostNetwork") and rec.get("containerId"):
            cid, ns = rec["containerId"], rec["netns"]
            args = self._cni_args(self.pod, cid)
            prev = self.k.cni.cached_result(cid, IFNAME)
            # DEL is best effort here, as in containerd: a failure is reported
            # (log + Warning event, so a CNI bug is visible) and the netns goes anyway.
            try:
                await self.k.cni.delete(cid, f"/run/netns/{ns}", IFNAME, args, prev)
            except (CniError, CniConfigError) as e:
                self.log.warning("CNI DEL failed", error=str(e))
                if report:
                    await self.event(self.pod, "FailedKillPod", f"CNI DEL: {e}")
            try:
                await netns.adelete(ns)
            except (OSError, netns.NetnsError) as e:
                self.log.warning("netns removal failed", netns=ns, error=str(e))
            try:
                await self.k.cni.delete(cid, "", IFNAME, args, None)
            except (CniError, CniConfigError) as e:
                self.log.warning("CNI DEL without netns failed", error=str(e))
                if report:
                    await self.event(self.pod, "FailedKillPod", f"CNI DEL (no netns): {e}")
            await self.k.cni.drop_cache(cid, IFNAME)
        await self.k.drop_record(self.uid)

    async def teardown(self, confirm: bool) -> None:
        if self.runtime is None and self.ready:
            # Deleted before (or while) the agents were down: its adopted
            # processes must still get their SIGTERM.
            self.start_runtime(run=False)
        if self.runtime is not None:
            await self.runtime.stop()
        await self.release_sandbox()
        md = self.pod["metadata"]
        pod_logs = podlogs.pod_dir(self.k.logs_root, md.get("namespace", ""), md.get("name", ""),
                                   self.uid)  # fmt: skip
        await workers.pool().run(lambda: _remove_tree(pod_logs, self.k.run_root / self.uid))
        if confirm:
            body = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                    "preconditions": {"uid": self.uid}}  # fmt: skip
            try:
                await self.k.kube.delete(pod_path(self.pod), body)
            except KubeError as e:
                if e.status not in (404, 409):
                    self.log.warning("pod deletion not confirmed", error=str(e))
            except (aiohttp.ClientError, OSError) as e:
                # The next relist (after the watch reconnects) finds it again.
                self.log.warning("pod deletion not confirmed", error=str(e))
        self.log.info("pod removed")


def _remove_tree(*paths: Path) -> None:
    for p in paths:
        shutil.rmtree(p, ignore_errors=True)
