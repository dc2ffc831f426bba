"""Kubernetes Events for what users must fix (bad fixed IP, bad Subnet...).

The same complaint about the same object is posted once, then counted up on
the existing Event, so a retry loop cannot flood the API.
"""

from __future__ import annotations

import collections
import datetime
import hashlib

import structlog

from services.common.kube import KubeClient, KubeError, Obj, resource_path

log = structlog.get_logger(__name__)
COMPONENT = "kovn-controller"
MAX_REMEMBERED = 10_000


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRecorder:
    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube
        # digest -> (event name, count); bounded, oldest complaints forgotten first.
        self._posted: collections.OrderedDict[str, tuple[str, int]] = collections.OrderedDict()
        self.posted = 0

    async def warning(self, ref: Obj, reason: str, message: str) -> None:
        await self.post(ref, "Warning", reason, message)

    async def post(self, ref: Obj, type_: str, reason: str, message: str) -> None:
        """`ref`: an object reference (kind, apiVersion, name, namespace, uid)."""
        namespace = ref.get("namespace") or "default"
        digest = hashlib.blake2b(
            f"{ref.get('uid')}|{ref.get('name')}|{reason}|{message}".encode(), digest_size=8
        ).hexdigest()
        seen = self._posted.get(digest)
        try:
            if seen is not None:
                name, count = seen
                await self.kube.merge_patch(
                    resource_path("", "v1", "events", namespace, name),
                    {"count": count + 1, "lastTimestamp": _now()},
                )
                self._posted[digest] = (name, count + 1)
                return
            name = f"{ref.get('name')}.{digest}"
            now = _now()
            await self.kube.create(
                resource_path("", "v1", "events", namespace),
                {
                    "apiVersion": "v1",
                    "kind": "Event",
                    "metadata": {"name": name, "namespace": namespace},
                    "involvedObject": ref,
                    "reason": reason,
                    "message": message,
                    "type": type_,
                    "source": {"component": COMPONENT},
                    "reportingComponent": COMPONENT,
                    "firstTimestamp": now,
                    "lastTimestamp": now,
                    "count": 1,
                },
            )
            self._posted[digest] = (name, 1)
            if len(self._posted) > MAX_REMEMBERED:
                self._posted.popitem(last=False)
            self.posted += 1
        except KubeError as exc:
            if exc.status == 409:
                self._posted[digest] = (f"{ref.get('name')}.{digest}", 1)
                return
            log.warning("could not post event", reason=reason, error=str(exc))


def object_ref(kind: str, api_version: str, obj: Obj) -> Obj:
    """The involvedObject of an Event about a namespaced object."""
    meta = obj.get("metadata") or {}
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "uid": meta.get("uid"),
    }


def pod_ref(pod: Obj) -> Obj:
    return object_ref("Pod", "v1", pod)


def cluster_ref(kind: str, api_version: str, obj: Obj) -> Obj:
    meta = obj.get("metadata") or {}
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        "namespace": "default",
    }
