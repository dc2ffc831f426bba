"""pods/log and pods/exec: proxied to the pod's kubelet, as kube-apiserver does.

The API server owns no container output and no processes; it finds the
pod's node, reads the kubelet's port from the Node's
status.daemonEndpoints.kubeletEndpoint.Port and forwards the request to
the kubelet's /containerLogs and /exec endpoints (sandbox/runtime/server.py).
Logs stream through as they come (follow). Exec is a WebSocket on both
legs: the client's subprotocol choice (v5.channel.k8s.io, else v4) is
passed on, and frames are relayed unchanged. The sandbox's kubelets listen
on the host's loopback, so the node's address is 127.0.0.1 here; a real
server would use the Node's InternalIP.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

from .errors import ApiError, bad_request
from .store import dumps
from .verbs import Api

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
KUBELET_HOST = "127.0.0.1"


def _error(err: ApiError) -> web.Response:
    return web.Response(body=dumps(err.status()), status=err.code, content_type="application/json")


class PodIO:
    def __init__(self, api: Api) -> None:
        self.api = api
        self._session: aiohttp.ClientSession | None = None

    def routes(self, app: web.Application) -> None:
        base = "/api/v1/namespaces/{ns}/pods/{name}"
        app.router.add_get(base + "/log", self.logs)
        app.router.add_route("GET", base + "/exec", self.exec)
        app.router.add_route("POST", base + "/exec", self.exec)
        app.on_cleanup.append(self._close)

    async def _close(self, _app: web.Application) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        return self._session

    def _locate(self, request: web.Request) -> tuple[str, str]:
        """(kubelet base URL, container) for the request's pod."""
        ns, name = request.match_info["ns"], request.match_info["name"]
        pods = self.api.registry.lookup("", "v1", "pods")
        nodes = self.api.registry.lookup("", "v1", "nodes")
        assert pods is not None and nodes is not None
        pod: dict[str, Any] = self.api.objects.get(pods, ns, name).obj
        spec = pod.get("spec", {})
        container = request.query.get("container", "")
        names = [c["name"] for c in spec.get("containers", [])]
        every = names + [c["name"] for c in spec.get("initContainers") or []]
        if not container:
            if len(names) != 1:
                raise bad_request(
                    f"a container name must be specified for pod {name}, "
                    f"choose one of: [{' '.join(names)}]"
                )
            container = names[0]
        elif container not in every:
            raise bad_request(f"container {container} is not valid for pod {name}")
        node_name = spec.get("nodeName")
        if not node_name:
            raise bad_request(f"pod {name} does not have a host assigned")
        node = self.api.objects.find(nodes, "", node_name)
        port = (
            ((node.obj if node else {}).get("status") or {})
            .get("daemonEndpoints", {})
            .get("kubeletEndpoint", {})
            .get("Port")
        )
        if not port:
            raise ApiError(503, f"no kubelet endpoint for node {node_name}", "ServiceUnavailable")
        return f"http://{KUBELET_HOST}:{port}", f"{ns}/{name}/{container}"

    async def logs(self, request: web.Request) -> web.StreamResponse:
        try:
            base, where = self._locate(request)
        except ApiError as e:
            return _error(e)
        q = {k: v for k, v in request.query.items() if k != "container"}
        try:
            upstream = await self.session.get(f"{base}/containerLogs/{where}", params=q)
        except aiohttp.ClientError as e:
            return _error(ApiError(503, f"kubelet unreachable: {e}", "ServiceUnavailable"))
        async with upstream:
            ctype = upstream.headers.get("Content-Type", "text/plain")
            if upstream.status != 200:
                body = await upstream.read()
                return web.Response(
                    body=body, status=upstream.status, content_type=ctype.split(";")[0]
                )
            resp = web.StreamResponse(headers={"Content-Type": ctype})
            await resp.prepare(request)
            with contextlib.suppress(ConnectionResetError):
                async for chunk in upstream.content.iter_any():
                    await resp.write(chunk)
                await resp.write_eof()
            return resp

    async def exec(self, request: web.Request) -> web.StreamResponse:
        try:
            base, where = self._locate(request)
        except ApiError as e:
            return _error(e)
        ws = web.WebSocketResponse(protocols=PROTOCOLS, max_msg_size=0)
        if not ws.can_prepare(request).ok:
            return _error(bad_request("exec needs a WebSocket upgrade (SPDY is not offered)"))
        await ws.prepare(request)
        q = [(k, v) for k, v in request.query.items() if k != "container"]
        try:
            upstream = await self.session.ws_connect(
                f"{base}/exec/{where}",
                params=q,
                protocols=[ws.ws_protocol or PROTOCOLS[1]],
                max_msg_size=0,
            )
        except aiohttp.ClientError as e:
            err = ApiError(503, f"kubelet unreachable: {e}", "ServiceUnavailable")
            await ws.send_bytes(b"\x03" + dumps(err.status()))
            await ws.close()
            return ws

        async def down() -> None:
            async for msg in upstream:
                if msg.type == WSMsgType.BINARY:
                    await ws.send_bytes(msg.data)
                elif msg.type == WSMsgType.TEXT:
                    await ws.send_str(msg.data)

        async def up() -> None:
            async for msg in ws:
                if msg.type == WSMsgType.BINARY:
                    await upstream.send_bytes(msg.data)
                elif msg.type == WSMsgType.TEXT:
                    await upstream.send_str(msg.data)

        relays = [asyncio.create_task(down()), asyncio.create_task(up())]
        try:
            # The kubelet ends the exchange (after the status frame); a client
            # that leaves ends it too.
            await asyncio.wait(relays, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in relays:
                t.cancel()
            await asyncio.gather(*relays, return_exceptions=True)
            await upstream.close()
            await ws.close()
        return ws
