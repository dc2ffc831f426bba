"""Events expire after the event TTL, as with the real server's --event-ttl
(counted from the event's last activity)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from kubernetes_asyncio import client, watch

from sandbox.kubeapi.testing import running_kubeapi


async def test_events_expire_after_the_ttl_not_before(tmp_path: Path) -> None:
    ttl = 2.0
    async with running_kubeapi(tmp_path, event_ttl=ttl) as (_, api_client):
        core = client.CoreV1Api(api_client)
        loop = asyncio.get_running_loop()
        ref = {"kind": "Pod", "name": "p", "namespace": "default"}
        ev = await core.create_namespaced_event(
            "default", {"metadata": {"name": "e"}, "involvedObject": ref, "reason": "R"}
        )
        created = loop.time()
        w = watch.Watch()
        async for change in w.stream(
            core.list_namespaced_event,
            "default",
            resource_version=ev.metadata.resource_version,
            timeout_seconds=10,
        ):
            assert change["type"] == "DELETED" and change["object"].metadata.name == "e"
            w.stop()
        elapsed = loop.time() - created
        # timestamps have 1 s resolution: expiry comes between ttl-1 s and ttl+1 s
        assert ttl - 1.0 <= elapsed < ttl + 2.0
        assert (await core.list_namespaced_event("default")).items == []
