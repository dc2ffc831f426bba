"""Events the controller stand-ins record, as kube-controller-manager's do.

`kubectl describe deployment` shows "Scaled up replica set ..." and
`kubectl describe rs` "Created pod: ..."; people debug rollouts with them.
An event that cannot be written is logged and dropped: it must never fail
the reconcile that produced it.
"""

from __future__ import annotations

import aiohttp
import structlog

from sandbox.controllers.base import Obj
from sandbox.controllers.podutil import ts
from services.common.kube import KubeClient, KubeError

log = structlog.get_logger(__name__)


async def record(
    kube: KubeClient, obj: Obj, reason: str, message: str, *, component: str, warning: bool = False
) -> None:
    md = obj["metadata"]
    ns = md.get("namespace") or "default"
    stamp = ts()
    body = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{md['name']}.", "namespace": ns},
        "involvedObject": {
            "apiVersion": obj.get("apiVersion", ""),
            "kind": obj.get("kind", ""),
            "name": md["name"],
            "namespace": ns,
            "uid": md.get("uid", ""),
            "resourceVersion": md.get("resourceVersion", ""),
        },
        "reason": reason,
        "message": message,
        "type": "Warning" if warning else "Normal",
        "source": {"component": component},
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
    try:
        await kube.create(f"/api/v1/namespaces/{ns}/events", body)
    except (KubeError, aiohttp.ClientError, OSError) as e:
        log.info("event not recorded", reason=reason, error=str(e))
