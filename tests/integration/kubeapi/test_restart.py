"""The store survives a restart: objects stay, resourceVersions continue."""

from __future__ import annotations

from pathlib import Path

from kubernetes_asyncio import client

from sandbox.kubeapi.testing import running_kubeapi


async def test_restart_keeps_objects_and_versions(tmp_path: Path) -> None:
    async with running_kubeapi(tmp_path) as (_, api_client):
        core = client.CoreV1Api(api_client)
        await core.create_namespace({"metadata": {"name": "keep"}})
        c = await core.create_namespaced_config_map(
            "keep", {"metadata": {"name": "c"}, "data": {"a": "1"}}
        )
        gone = await core.create_namespaced_config_map("keep", {"metadata": {"name": "gone"}})
        await core.delete_namespaced_config_map("gone", "keep")
        last_rv = int(gone.metadata.resource_version) + 1  # the deletion's version
    async with running_kubeapi(tmp_path) as (_, api_client):
        core = client.CoreV1Api(api_client)
        got = await core.read_namespaced_config_map("c", "keep")
        assert got.data == {"a": "1"}
        assert got.metadata.uid == c.metadata.uid
        assert got.metadata.resource_version == c.metadata.resource_version
        names = [x.metadata.name for x in (await core.list_namespaced_config_map("keep")).items]
        assert names == ["c"]
        new = await core.create_namespaced_config_map("keep", {"metadata": {"name": "n"}})
        assert int(new.metadata.resource_version) > last_rv
