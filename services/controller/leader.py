"""Leader election through a coordination.k8s.io/v1 Lease.

Every replica runs this loop; the one whose identity is in the Lease holds
it by renewing `renewTime`, everyone else takes over once the Lease has not
changed for `leaseDurationSeconds` as measured on their OWN clock (the
same rule client-go uses, so clock skew between replicas does not matter).
Updates carry the resourceVersion they read, so two candidates cannot both
win: the loser gets 409 Conflict. A leader that cannot renew within
`renew_deadline` steps down before anyone else may take over, and a replica
that stops cleanly empties the holder so the next one takes over at once.
The leader's gRPC address rides on the Lease (annotation), which is how
followers forward calls to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from services.common.kube import KubeClient, KubeError, Obj, resource_path
from services.controller import metrics

log = structlog.get_logger(__name__)
ADDRESS_ANNOTATION = "kovn.io/leader-address"


def _micro_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        kube: KubeClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        address: str,
        lease_duration: float,
        renew_deadline: float,
        retry_period: float,
        on_started: Callable[[], Awaitable[None]],
        on_stopped: Callable[[], Awaitable[None]],
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.address = address
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.on_started = on_started
        self.on_stopped = on_stopped
        self.is_leader = False
        self.leader_identity = ""
        self.leader_address = ""
        self.transitions = 0
        self._observed_rv = ""
        self._observed_at = 0.0
        self._last_renew = 0.0
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.changed = asyncio.Event()

    @property
    def path(self) -> str:
        return resource_path("coordination.k8s.io", "v1", "leases", self.namespace, self.name)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="leader-election")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.is_leader:
            await self._step_down("stopping")
            with contextlib.suppress(KubeError):
                await self._release()

    async def _release(self) -> None:
        lease = await self.kube.get(self.path)
        if (lease.get("spec") or {}).get("holderIdentity") != self.identity:
            return
        lease["spec"]["holderIdentity"] = ""
        await self.kube.replace(self.path, lease)

    def _pulse(self) -> None:
        old, self.changed = self.changed, asyncio.Event()
        old.set()

    async def _run(self) -> None:
        while True:
            try:
                await self._tick()
            except KubeError as exc:
                log.info("lease update failed", error=str(exc))
            if self.is_leader and time.monotonic() - self._last_renew > self.renew_deadline:
                await self._step_down("could not renew the lease in time")
            await asyncio.sleep(self.retry_period)  # the renew period itself

    def _spec(self, transitions: int, acquire: str) -> dict[str, Any]:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.lease_duration)),
            "acquireTime": acquire,
            "renewTime": _micro_now(),
            "leaseTransitions": transitions,
        }

    async def _tick(self) -> None:
        try:
            lease = await self.kube.get(self.path)
        except KubeError as exc:
            if exc.status != 404:
                raise
            body: Obj = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": self.name,
                    "namespace": self.namespace,
                    "annotations": {ADDRESS_ANNOTATION: self.address},
                },
                "spec": self._spec(0, _micro_now()),
            }
            try:
                created = await self.kube.create(
                    resource_path("coordination.k8s.io", "v1", "leases", self.namespace), body
                )
            except KubeError as exc2:
                if exc2.status == 409:
                    return
                raise
            self._observe(created)
            await self._became_leader()
            return
        self._observe(lease)
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        now = time.monotonic()
        if holder == self.identity:
            if not self.is_leader and self._stopping:
                return
            lease["spec"] = {**spec, "renewTime": _micro_now()}
            lease.setdefault("metadata", {}).setdefault("annotations", {})[ADDRESS_ANNOTATION] = (
                self.address
            )
            updated = await self.kube.replace(self.path, lease)
            self._observe(updated)
            if not self.is_leader:
                await self._became_leader()
            else:
                self._last_renew = now
            return
        if self.is_leader:
            await self._step_down(f"lease taken by {holder!r}")
        expired = not holder or now - self._observed_at > self.lease_duration
        if not expired or self._stopping:
            return
        transitions = int(spec.get("leaseTransitions") or 0) + (1 if holder else 0)
        lease["spec"] = self._spec(transitions, _micro_now())
        lease.setdefault("metadata", {}).setdefault("annotations", {})[ADDRESS_ANNOTATION] = (
            self.address
        )
        try:
            updated = await self.kube.replace(self.path, lease)
        except KubeError as exc:
            if exc.status == 409:
                return  # someone else won this round
            raise
        self._observe(updated)
        await self._became_leader()

    def _observe(self, lease: Obj) -> None:
        meta = lease.get("metadata") or {}
        rv = str(meta.get("resourceVersion", ""))
        if rv != self._observed_rv:
            self._observed_rv = rv
            self._observed_at = time.monotonic()
        holder = (lease.get("spec") or {}).get("holderIdentity") or ""
        address = (meta.get("annotations") or {}).get(ADDRESS_ANNOTATION, "") if holder else ""
        if (holder, address) != (self.leader_identity, self.leader_address):
            self.leader_identity, self.leader_address = holder, address
            self._pulse()

    async def _became_leader(self) -> None:
        self._last_renew = time.monotonic()
        self.is_leader = True
        self.transitions += 1
        metrics.IS_LEADER.set(1)
        log.info("became leader", identity=self.identity)
        self._pulse()
        await self.on_started()

    async def _step_down(self, reason: str) -> None:
        if not self.is_leader:
            return
        self.is_leader = False
        metrics.IS_LEADER.set(0)
        log.warning("stepped down", identity=self.identity, reason=reason)
        # Observers woken by the pulse may rely on leader work having stopped.
        await self.on_stopped()
        self._pulse()
