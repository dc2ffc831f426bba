"""The sandbox's node agents process: scheduler, kubelets and controllers.

One asyncio process hosts them all and shares a single pod watch, since the
embedded API server and these stand-ins run on the same two cores as the
real CNI path being tested. Events are routed to the scheduler (pods with no
node), to the kubelet of the pod's node and to the controllers' pod cache
(`sandbox.controllers`: ReplicaSet, Deployment, DaemonSet, Job, EndpointSlice,
Endpoints, the `kubernetes` Service), which watch their other kinds
themselves.

    python -m sandbox.agents --state-dir DIR [--ready-fd N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from sandbox import workers
from sandbox.components import control_ip
from sandbox.controllers.manager import ControllerManager, api_port
from sandbox.kubelet import Kubelet
from sandbox.layout import Layout
from sandbox.scheduler import Scheduler
from services.common.kube import KubeClient, KubeError, connect
from services.common.logging import configure_logging
from services.common.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

#: Connections to the API server: a burst of pods means hundreds of
#: concurrent status writes, bindings and events from this one process.
POOL_SIZE = 256


class Agents:
    def __init__(self, layout: Layout, kube: KubeClient) -> None:
        self.layout = layout
        self.kube = kube
        # The API's advertised address is the control-plane host on the
        # underlay, where the nodes reach the root namespace's services.
        self.controllers = ControllerManager(
            kube, api_address=control_ip(layout), api_port=api_port(layout.api_url)
        )
        self.kubelets = {n.name: Kubelet(kube, layout, n) for n in layout.nodes}
        self.scheduler = Scheduler(
            kube,
            {
                n.name: {
                    "kubernetes.io/hostname": n.name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                }
                for n in layout.nodes
            },
        )
        self.known: dict[str, dict[str, Any]] = {}  # uid -> last seen pod

    async def register_nodes(self) -> None:
        await asyncio.gather(*(k.register() for k in self.kubelets.values()))

    def dispatch(self, kind: str, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        if kind == "DELETED":
            self.known.pop(uid, None)
        else:
            self.known[uid] = pod
        self.scheduler.on_pod(kind, pod)
        self.controllers.feed_pod(kind, pod)
        kubelet = self.kubelets.get(pod["spec"].get("nodeName") or "")
        if kubelet is not None:
            kubelet.on_pod(kind, pod)

    async def watch_pods(self, synced: asyncio.Event) -> None:
        """List, then watch from the list's resourceVersion; relist on 410 Gone."""
        backoff = 0.2
        while True:
            try:
                listing = await self.kube.get("/api/v1/pods")
                rv = listing["metadata"].get("resourceVersion", "")
                seen = set()
                for pod in listing.get("items", []):
                    seen.add(pod["metadata"]["uid"])
                    self.dispatch("MODIFIED", pod)
                for uid, pod in list(self.known.items()):
                    if uid not in seen:
                        self.dispatch("DELETED", pod)
                for kubelet in self.kubelets.values():
                    kubelet.collect_orphans(seen)
                synced.set()
                self.controllers.pods_synced()
                while True:
                    expired = False
                    async for ev in self.kube.watch("/api/v1/pods", rv, timeout_seconds=None):
                        obj = ev.get("object") or {}
                        if ev.get("type") == "ERROR":
                            expired = obj.get("code") == 410
                            log.info("watch error", status=obj)
                            break
                        rv = obj.get("metadata", {}).get("resourceVersion", rv)
                        if ev.get("type") != "BOOKMARK":
                            self.dispatch(str(ev["type"]), obj)
                    backoff = 0.2
                    if expired:
                        break
            except (aiohttp.ClientError, KubeError, OSError, ValueError) as e:
                log.warning("pod watch failed", error=str(e), retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def close(self) -> None:
        await self.controllers.close()
        await self.scheduler.close()
        await asyncio.gather(*(k.close() for k in self.kubelets.values()))


async def amain(state_dir: Path, ready_fd: int | None) -> int:
    layout = Layout.load(state_dir)
    # Start the worker threads now: started lazily by the first pod of a
    # burst, 256 thread starts would stall the loop right when it is busiest.
    workers.start_all()
    kube = KubeClient(await connect(layout.kubeconfig, pool_size=POOL_SIZE))
    agents = Agents(layout, kube)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watcher: asyncio.Task[None] | None = None
    heartbeats: list[asyncio.Task[None]] = []
    try:
        await agents.register_nodes()
        heartbeats = [asyncio.create_task(k.heartbeat()) for k in agents.kubelets.values()]
        synced = asyncio.Event()
        watcher = asyncio.create_task(agents.watch_pods(synced))
        await synced.wait()
        await agents.controllers.start()
        if ready_fd is not None:
            os.write(ready_fd, b"ready\n")
            os.close(ready_fd)
        log.info("agents ready", nodes=[n.name for n in layout.nodes])
        await stop.wait()
    finally:
        await asyncio.gather(*(cancel_and_wait(t) for t in [*heartbeats, watcher]))
        await agents.close()
        await kube.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sandbox.agents")
    ap.add_argument("--state-dir", required=True, type=Path)
    ap.add_argument("--ready-fd", type=int, default=None)
    args = ap.parse_args(argv)
    # JSON lines on stderr (agents.log), like every kovn service.
    configure_logging(fmt="json", level="info")
    if sys.version_info < (3, 12):
        # 3.11's default child watcher starts a thread per subprocess; a pod
        # burst runs hundreds of CNI plugins. pidfd watching needs no thread.
        asyncio.set_child_watcher(asyncio.PidfdChildWatcher())
    return asyncio.run(amain(args.state_dir, args.ready_fd))


if __name__ == "__main__":
    sys.exit(main())
