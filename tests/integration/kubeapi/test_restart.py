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


async def test_restart_serves_stored_crds_and_their_objects(tmp_path: Path) -> None:
    from .test_crd import SUBNET_CRD

    async with running_kubeapi(tmp_path) as (_, api_client):
        await client.ApiextensionsV1Api(api_client).create_custom_resource_definition(SUBNET_CRD)
        body = {
            "apiVersion": "kovn.io/v1",
            "kind": "Subnet",
            "metadata": {"name": "s"},
            "spec": {"cidrBlock": "10.1.0.0/16"},
        }
        await client.CustomObjectsApi(api_client).create_cluster_custom_object(
            "kovn.io", "v1", "subnets", body
        )
    async with running_kubeapi(tmp_path) as (_, api_client):
        api = client.CustomObjectsApi(api_client)
        got = await api.get_cluster_custom_object("kovn.io", "v1", "subnets", "s")
        assert got["spec"]["cidrBlock"] == "10.1.0.0/16"
        # the schema is enforced again after the restart
        bad = {
            "apiVersion": "kovn.io/v1",
            "kind": "Subnet",
            "metadata": {"name": "b"},
            "spec": {"cidrBlock": "nope"},
        }
        try:
            await api.create_cluster_custom_object("kovn.io", "v1", "subnets", bad)
        except client.ApiException as e:
            assert e.status == 422
        else:
            raise AssertionError("schema not enforced after restart")


async def test_watch_resumes_across_restart_only_from_current_version(tmp_path: Path) -> None:
    import aiohttp

    async with running_kubeapi(tmp_path) as (_, api_client):
        core = client.CoreV1Api(api_client)
        old = await core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
        await core.create_namespaced_config_map("default", {"metadata": {"name": "b"}})
        current = (await core.list_namespaced_config_map("default")).metadata.resource_version
    async with running_kubeapi(tmp_path) as (srv, _):
        url = f"{srv.url}/api/v1/namespaces/default/configmaps"
        async with aiohttp.ClientSession() as s:
            # history did not survive: an older version is 410 Gone...
            params = {"watch": "1", "resourceVersion": old.metadata.resource_version}
            async with s.get(url, params=params) as r:
                ev = await r.content.readline()
            assert b'"code":410' in ev
            # ...while the newest version resumes cleanly
            params = {"watch": "1", "resourceVersion": current, "timeoutSeconds": "1"}
            async with s.post(url, json={"metadata": {"name": "c"}}) as r:
                assert r.status == 201
            async with s.get(url, params=params) as r:
                ev = await r.content.readline()
            assert b'"ADDED"' in ev and b'"name":"c"' in ev
