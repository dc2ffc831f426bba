"""The feeder: Services and EndpointSlices in, dnsmasq's data out, on every change.

It lists and watches both kinds (push: a watch event, never a periodic
poll), keeps them in memory, and on each change rebuilds the zone
(`records.build`): the hosts file is replaced at once (every node's dnsmasq
re-reads it on inotify), and when the SRV/CNAME lines changed each node's
dnsmasq is switched to a new generation (`dnsmasq.NodeDns.apply`), one
worker per node so a slow node never holds back the hosts file or another
node. Changes that arrive while a switch runs are folded into the next one.

It also keeps `kube-system/kube-dns` in place, as the addon manager does for
CoreDNS: the Service (ClusterIP, 53/UDP `dns`, 53/TCP `dns-tcp`, no
selector) and one EndpointSlice managed by this feeder that names each
node's DNS address, recreated if someone deletes them.

    python -m sandbox.dns --state-dir DIR --ready-file FILE [--log-format json]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from sandbox.dns import records
from sandbox.dns.dnsmasq import DNS_PORT, NodeDns, Settings
from sandbox.layout import Layout, write_atomic
from services.common.kube import KubeClient, KubeError
from services.common.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

Obj = dict[str, Any]
Key = tuple[str, str]

SERVICES = "/api/v1/services"
SLICES = "/apis/discovery.k8s.io/v1/endpointslices"
DNS_NAMESPACE = "kube-system"
DNS_SERVICE = "kube-dns"
DNS_SLICE = "kube-dns-sandbox"
MANAGED_BY = "dns.sandbox.kovn.io"
#: kubeadm's choice: the 10th address of the default Service CIDR 10.96.0.0/16.
DEFAULT_CLUSTER_IP = "10.96.0.10"
HOSTS_FILE = "cluster"
#: Events arriving within this long are applied together.
COALESCE_SECONDS = 0.01


def kube_dns_service(cluster_ip: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": DNS_SERVICE,
            "namespace": DNS_NAMESPACE,
            "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "dnsmasq"},
        },
        "spec": {
            "clusterIP": cluster_ip,
            "ports": [
                {"name": "dns", "port": DNS_PORT, "protocol": "UDP", "targetPort": DNS_PORT},
                {"name": "dns-tcp", "port": DNS_PORT, "protocol": "TCP", "targetPort": DNS_PORT},
            ],
        },
    }


def kube_dns_slice(service: Obj, servers: dict[str, tuple[str, bool]]) -> Obj:
    """The EndpointSlice naming each node's server: node -> (address, ready)."""
    md = service["metadata"]
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": DNS_SLICE,
            "namespace": DNS_NAMESPACE,
            "labels": {
                records.SERVICE_NAME_LABEL: DNS_SERVICE,
                "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
                "k8s-app": "kube-dns",
            },
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Service", "name": md["name"], "uid": md["uid"]}
            ],
        },
        "addressType": "IPv4",
        "endpoints": [
            {
                "addresses": [addr],
                "conditions": {"ready": ready, "serving": ready, "terminating": False},
                "nodeName": node,
            }
            for node, (addr, ready) in sorted(servers.items())
        ],
        "ports": [
            {"name": "dns", "port": DNS_PORT, "protocol": "UDP"},
            {"name": "dns-tcp", "port": DNS_PORT, "protocol": "TCP"},
        ],
    }


def _key(obj: Obj) -> Key:
    md = obj.get("metadata") or {}
    return str(md.get("namespace") or ""), str(md.get("name") or "")


class Informer:
    """List + watch one collection into a dict; relist on 410 Gone or a broken stream."""

    def __init__(self, kube: KubeClient, path: str, on_change: Callable[[str, Obj], None]) -> None:
        self.kube = kube
        self.path = path
        self.items: dict[Key, Obj] = {}
        self.synced = asyncio.Event()
        self.on_change = on_change

    async def run(self) -> None:
        backoff = 0.2
        while True:
            try:
                items, rv = await self.kube.list(self.path)
                fresh = {_key(o): o for o in items}
                gone = [o for k, o in self.items.items() if k not in fresh]
                self.items = fresh
                for o in gone:
                    self.on_change("DELETED", o)
                self.on_change("SYNC", {})
                self.synced.set()
                while True:
                    expired = False
                    async for ev in self.kube.watch(self.path, rv, timeout_seconds=None):
                        obj = ev.get("object") or {}
                        kind = str(ev.get("type"))
                        if kind == "ERROR":
                            expired = obj.get("code") == 410
                            log.info("watch error", path=self.path, status=obj)
                            break
                        rv = (obj.get("metadata") or {}).get("resourceVersion", rv)
                        if kind == "BOOKMARK":
                            continue
                        if kind == "DELETED":
                            self.items.pop(_key(obj), None)
                        else:
                            self.items[_key(obj)] = obj
                        self.on_change(kind, obj)
                    backoff = 0.2
                    if expired:
                        break
            except (aiohttp.ClientError, KubeError, OSError, ValueError) as e:
                log.warning("watch failed", path=self.path, error=str(e), retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)


class Feeder:
    def __init__(
        self,
        kube: KubeClient,
        lay: Layout,
        addresses: dict[str, str],
        *,
        zone: str = records.DEFAULT_ZONE,
        ttl: int = 5,
        cluster_ip: str = DEFAULT_CLUSTER_IP,
        upstreams: tuple[str, ...] = (),
    ) -> None:
        self.kube = kube
        self.lay = lay
        self.zone = zone
        self.ttl = ttl
        self.cluster_ip = cluster_ip
        self.dir = dns_dir(lay)
        self.hosts_dir = self.dir / "hosts"
        st = Settings(zone=zone, ttl=ttl, hosts_dir=self.hosts_dir, upstreams=upstreams)
        self.nodes = {
            n.name: NodeDns(n.name, n.netns, addresses[n.name], self.dir / n.name, st)
            for n in lay.nodes
        }
        self.services = Informer(kube, SERVICES, self._changed)
        self.slices = Informer(kube, SLICES, self._changed)
        self.dirty = asyncio.Event()
        self.ensure_needed = asyncio.Event()
        self.wanted: list[str] = []
        self.wakeups = {name: asyncio.Event() for name in self.nodes}
        self.hosts_text: str | None = None
        self.tasks: list[asyncio.Task[None]] = []

    # -- events ----------------------------------------------------------------

    def _changed(self, kind: str, obj: Obj) -> None:
        self.dirty.set()
        if kind in ("DELETED", "SYNC") and _key(obj) in (("", ""), (DNS_NAMESPACE, DNS_SERVICE),
                                                         (DNS_NAMESPACE, DNS_SLICE)):  # fmt: skip
            self.ensure_needed.set()

    def zone_now(self) -> records.Zone:
        return records.build(self.services.items.values(), self.slices.items.values(), self.zone)

    def _write_hosts(self, zone: records.Zone) -> None:
        text = zone.hosts_text()
        if text == self.hosts_text:
            return
        self.hosts_dir.mkdir(parents=True, exist_ok=True)
        # dnsmasq ignores dot-files in a hosts dir: the temp file is never read half-written.
        tmp = self.hosts_dir / f".{HOSTS_FILE}.tmp"
        tmp.write_text(text)
        tmp.replace(self.hosts_dir / HOSTS_FILE)
        self.hosts_text = text

    # -- loops -----------------------------------------------------------------

    async def _apply_loop(self) -> None:
        while True:
            await self.dirty.wait()
            await asyncio.sleep(COALESCE_SECONDS)
            self.dirty.clear()
            zone = self.zone_now()
            self._write_hosts(zone)
            lines = zone.config_lines(self.ttl)
            if lines != self.wanted:
                self.wanted = lines
                for ev in self.wakeups.values():
                    ev.set()

    async def _node_loop(self, name: str) -> None:
        node, wake = self.nodes[name], self.wakeups[name]
        while True:
            await wake.wait()
            wake.clear()
            await node.apply(list(self.wanted))

    async def _ensure_loop(self) -> None:
        while True:
            await self.ensure_needed.wait()
            self.ensure_needed.clear()
            try:
                await self.ensure_kube_dns()
            except (aiohttp.ClientError, KubeError, OSError) as e:
                log.warning("kube-dns not ensured", error=str(e))
                await asyncio.sleep(1.0)
                self.ensure_needed.set()

    async def ensure_kube_dns(self) -> None:
        """The kube-dns Service and our EndpointSlice, created or made as they should be."""
        path = f"/api/v1/namespaces/{DNS_NAMESPACE}/services"
        try:
            svc = await self.kube.get(f"{path}/{DNS_SERVICE}")
        except KubeError as e:
            if e.status != 404:
                raise
            try:
                svc = await self.kube.create(path, kube_dns_service(self.cluster_ip))
            except KubeError as e2:
                if e2.status != 422:
                    raise
                # The address is taken: let the API pick one, as for any Service.
                body = kube_dns_service("")
                del body["spec"]["clusterIP"]
                svc = await self.kube.create(path, body)
        self.cluster_ip = str((svc.get("spec") or {}).get("clusterIP") or self.cluster_ip)
        servers = {n: (d.address, d.serving()) for n, d in self.nodes.items()}
        body = kube_dns_slice(svc, servers)
        spath = f"/apis/discovery.k8s.io/v1/namespaces/{DNS_NAMESPACE}/endpointslices"
        try:
            await self.kube.create(spath, body)
        except KubeError as e:
            if e.status != 409:
                raise
            await self.kube.merge_patch(
                f"{spath}/{DNS_SLICE}",
                {k: body[k] for k in ("endpoints", "ports", "addressType")}
                | {"metadata": {"labels": body["metadata"]["labels"]}},
            )

    # -- life ------------------------------------------------------------------

    async def start(self) -> None:
        """Synced, every node's dnsmasq serving, kube-dns in place."""
        self.tasks = [
            asyncio.create_task(self.services.run()),
            asyncio.create_task(self.slices.run()),
        ]
        await asyncio.gather(self.services.synced.wait(), self.slices.synced.wait())
        zone = self.zone_now()
        self._write_hosts(zone)
        self.wanted = zone.config_lines(self.ttl)
        await asyncio.gather(*(n.start(self.wanted) for n in self.nodes.values()))
        self.dirty.clear()
        await self.ensure_kube_dns()
        self.ensure_needed.clear()
        self.tasks += [
            asyncio.create_task(self._apply_loop()),
            asyncio.create_task(self._ensure_loop()),
            *(asyncio.create_task(self._node_loop(n)) for n in self.nodes),
        ]
        self.dirty.set()  # whatever changed while the servers started

    def describe(self) -> Obj:
        return {
            "cluster_ip": self.cluster_ip,
            "zone": self.zone,
            "nodes": {
                n: {"address": d.address, "port": DNS_PORT, "netns": d.ns}
                for n, d in self.nodes.items()
            },
        }

    async def stop(self) -> None:
        await asyncio.gather(*(cancel_and_wait(t) for t in self.tasks))
        await asyncio.gather(*(n.stop() for n in self.nodes.values()))


def dns_dir(lay: Layout) -> Path:
    return lay.dir / "dns"


def write_ready(path: Path, info: Obj) -> None:
    write_atomic(path, json.dumps(info, indent=2) + "\n")


def read_ready(path: Path) -> Obj | None:
    with contextlib.suppress(OSError, ValueError):
        info: Obj = json.loads(path.read_text())
        return info
    return None
