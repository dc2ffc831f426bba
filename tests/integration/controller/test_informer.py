"""The informer against the embedded API: resume, 410 re-list, reconnect."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sandbox.kubeapi import KubeApiServer
from services.common.kube import KubeClient, Obj, connect
from services.controller.informer import DELETED, Informer

NS = "/api/v1/namespaces/default/configmaps"


def _cm(name: str) -> Obj:
    return {"metadata": {"name": name}, "data": {"k": name}}


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.changed = asyncio.Event()

    def __call__(self, etype: str, key: str, old: Obj | None, new: Obj | None) -> None:
        self.events.append((etype, key))
        self.changed.set()

    async def until(self, pred: object, timeout: float = 10.0) -> None:
        async def wait() -> None:
            while not pred():  # type: ignore[operator]
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(wait(), timeout)


async def test_relists_after_410_and_reports_what_vanished(tmp_path: Path) -> None:
    srv = KubeApiServer(tmp_path / "api", history_size=10)
    await srv.start()
    kube = KubeClient(await connect(str(srv.kubeconfig_path)))
    try:
        await kube.create(NS, _cm("old"))
        informer = Informer(kube, "configmaps", NS)
        rec = Recorder()
        informer.add_listener(rec)
        informer.start()
        await asyncio.wait_for(informer.synced.wait(), 10)
        assert "default/old" in informer.cache
        await informer.stop()
        # While stopped: more changes than the server's history holds.
        await kube.delete(f"{NS}/old")
        for i in range(30):
            await kube.create(NS, _cm(f"c{i}"))
        informer.start()
        await rec.until(lambda: len(informer.cache) == 30)
        assert informer.lists == 2  # the watch got 410 Gone and listed again
        assert (DELETED, "default/old") in rec.events
        await informer.stop()
    finally:
        await kube.close()
        await srv.stop()


async def test_reconnects_and_resumes_without_relisting(tmp_path: Path) -> None:
    srv = KubeApiServer(tmp_path / "api")
    await srv.start()
    port = srv.port
    kube = KubeClient(await connect(str(srv.kubeconfig_path)))
    informer = Informer(kube, "configmaps", NS, max_backoff=0.2)
    rec = Recorder()
    informer.add_listener(rec)
    try:
        await kube.create(NS, _cm("a"))
        informer.start()
        await asyncio.wait_for(informer.synced.wait(), 10)
        await srv.stop()  # the API goes away under the watch
        srv = KubeApiServer(tmp_path / "api", port=port)
        await srv.start()
        await kube.create(NS, _cm("b"))
        await rec.until(lambda: "default/b" in informer.cache)
        assert informer.lists == 1  # resumed from its resourceVersion
        assert set(informer.cache) == {"default/a", "default/b"}
    finally:
        await informer.stop()
        await kube.close()
        await srv.stop()


async def test_a_resource_not_served_yet_is_empty_until_its_crd_arrives(tmp_path: Path) -> None:
    from tests.integration.controller.harness import install_crds

    srv = KubeApiServer(tmp_path / "api")
    await srv.start()
    kube = KubeClient(await connect(str(srv.kubeconfig_path)))
    informer = Informer(kube, "subnets", "/apis/kovn.io/v1/subnets", max_backoff=0.2)
    rec = Recorder()
    informer.add_listener(rec)
    try:
        informer.start()
        await asyncio.wait_for(informer.synced.wait(), 10)  # synced, though empty
        assert informer.cache == {}
        await install_crds(kube)
        await kube.create(
            "/apis/kovn.io/v1/subnets",
            {"apiVersion": "kovn.io/v1", "kind": "Subnet", "metadata": {"name": "late"},
             "spec": {"cidrBlock": "10.9.0.0/16"}},
        )  # fmt: skip
        await rec.until(lambda: "late" in informer.cache)
    finally:
        await informer.stop()
        await kube.close()
        await srv.stop()
