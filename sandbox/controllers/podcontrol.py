"""Creating and deleting a controller's pods, as upstream's PodControl does.

The ReplicaSet, DaemonSet and Job controllers all write pods the same way,
and each step matters for the next reconcile: the answer goes straight into
the shared pod cache (write-through, see `base`), so a reconcile that runs
before the watch catches up neither creates a pod twice nor counts a
deleted one; a delete carries the pod's uid as a precondition, so a
same-named successor is never hit, and a pod already gone (404) or
replaced (409) is nobody's error; every pod written is an Event on its
owner ("Created pod: ...", "Deleted pod: ..."), which `kubectl describe`
shows. One class keeps those rules in one place.
"""

from __future__ import annotations

import asyncio

from sandbox.controllers import events
from sandbox.controllers.base import Informer, Obj
from services.common.kube import KubeClient, KubeError


def pods_path(ns: str) -> str:
    return f"/api/v1/namespaces/{ns}/pods"


def pod_path(pod: Obj) -> str:
    md = pod["metadata"]
    return f"{pods_path(md['namespace'])}/{md['name']}"


class PodControl:
    """Writes pods for one controller (`component` signs its Events) into `pods`."""

    def __init__(self, kube: KubeClient, pods: Informer, component: str) -> None:
        self.kube = kube
        self.pods = pods
        self.component = component

    async def create(self, owner: Obj, body: Obj) -> Obj:
        """Create one pod in the owner's namespace; cached and recorded at once."""
        out = await self.kube.create(pods_path(owner["metadata"]["namespace"]), body)
        self.pods.wrote(out)
        await events.record(
            self.kube,
            owner,
            "SuccessfulCreate",
            f"Created pod: {out['metadata']['name']}",
            component=self.component,
        )
        return out

    async def delete(self, owner: Obj, pods: list[Obj], *, event: bool = True) -> None:
        """Delete the pods (each once, concurrently) that `owner` controls.

        A pod the answer shows still terminating (grace period) stays in the
        cache with its deletionTimestamp; one deleted at once leaves it now.
        """

        async def one(pod: Obj) -> None:
            try:
                out = await self.kube.delete(
                    pod_path(pod), {"preconditions": {"uid": pod["metadata"]["uid"]}}
                )
            except KubeError as e:
                if e.status in (404, 409):
                    return
                raise
            if (out.get("metadata") or {}).get("deletionTimestamp"):
                self.pods.wrote(out)
            else:
                self.pods.removed(pod)
            if event:
                await events.record(
                    self.kube,
                    owner,
                    "SuccessfulDelete",
                    f"Deleted pod: {pod['metadata']['name']}",
                    component=self.component,
                )

        unique = {p["metadata"]["uid"]: p for p in pods}
        await asyncio.gather(*(one(p) for p in unique.values()))
