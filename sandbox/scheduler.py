"""A scheduler stand-in: bind each unscheduled pod to the node with fewest pods.

The sandbox has no kube-scheduler, but pods created without `spec.nodeName`
must land on a node the way they would in a cluster: through the
pods/binding subresource. Placement is least-pods among the nodes that
`spec.nodeSelector` and the required node affinity admit (DaemonSet pods
are pinned to their node by a `metadata.name` matchFields term); counts are bumped at bind time so a
burst spreads evenly instead of piling onto the node that looked emptiest.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import structlog

from sandbox.controllers.podutil import node_affinity_matches
from services.common.kube import KubeClient, KubeError
from services.common.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

SCHEDULER_NAMES = (None, "", "default-scheduler")
BIND_ATTEMPTS = 8


class Scheduler:
    def __init__(self, kube: KubeClient, nodes: dict[str, dict[str, str]]) -> None:
        """nodes: node name -> its labels."""
        self.kube = kube
        self.nodes = nodes
        self.placed: dict[str, str] = {}  # pod uid -> node
        self.binding: set[str] = set()
        self.tasks: set[asyncio.Task[None]] = set()

    def on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        node = pod["spec"].get("nodeName")
        if kind == "DELETED":
            self.placed.pop(uid, None)
            return
        if node:
            self.placed[uid] = node
            return
        if (
            uid in self.binding
            or pod["metadata"].get("deletionTimestamp")
            or pod["spec"].get("schedulerName") not in SCHEDULER_NAMES
        ):
            return
        self.binding.add(uid)
        task = asyncio.create_task(self.bind(pod))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def choose(self, pod: dict[str, Any]) -> str | None:
        fits = [
            n for n, labels in self.nodes.items() if node_affinity_matches(pod["spec"], n, labels)
        ]
        if not fits:
            return None
        load = {n: 0 for n in fits}
        for n in self.placed.values():
            if n in load:
                load[n] += 1
        return min(fits, key=lambda n: (load[n], n))

    async def bind(self, pod: dict[str, Any]) -> None:
        md = pod["metadata"]
        uid = md["uid"]
        ref = f"{md['namespace']}/{md['name']}"
        backoff = 0.2
        try:
            for _attempt in range(BIND_ATTEMPTS):
                node = self.choose(pod)
                if node is None:
                    await self.unschedulable(pod)
                    return
                self.placed[uid] = node
                body = {
                    "apiVersion": "v1",
                    "kind": "Binding",
                    "metadata": {"name": md["name"], "namespace": md["namespace"], "uid": uid},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": node},
                }
                path = f"/api/v1/namespaces/{md['namespace']}/pods/{md['name']}/binding"
                try:
                    await self.kube.create(path, body)
                    return
                except KubeError as e:
                    self.placed.pop(uid, None)
                    if e.status in (404, 409):  # pod gone, or bound meanwhile
                        return
                    log.warning("binding failed", pod=ref, error=str(e), retry_in=backoff)
                except (aiohttp.ClientError, OSError) as e:
                    self.placed.pop(uid, None)
                    log.warning("binding failed", pod=ref, error=str(e), retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        finally:
            self.binding.discard(uid)

    async def unschedulable(self, pod: dict[str, Any]) -> None:
        md = pod["metadata"]
        selector = pod["spec"].get("nodeSelector") or {}
        msg = f"0/{len(self.nodes)} nodes are available: none matches nodeSelector {selector}"
        if (pod["spec"].get("affinity") or {}).get("nodeAffinity"):
            msg = (
                f"0/{len(self.nodes)} nodes are available: "
                "none matches the pod's node affinity/selector"
            )
        log.warning("no node fits", pod=f"{md['namespace']}/{md['name']}", selector=selector)
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{md['name']}.", "namespace": md["namespace"]},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": md["name"],
                               "namespace": md["namespace"], "uid": md["uid"]},
            "reason": "FailedScheduling",
            "message": msg,
            "type": "Warning",
            "source": {"component": "default-scheduler"},
        }  # fmt: skip
        try:
            await self.kube.create(f"/api/v1/namespaces/{md['namespace']}/events", body)
        except (KubeError, aiohttp.ClientError, OSError) as e:
            log.warning("event not recorded", error=str(e))

    async def close(self) -> None:
        await asyncio.gather(*(cancel_and_wait(t) for t in list(self.tasks)))
