"""A small JSON client for the Kubernetes API, for the kubelet and scheduler stand-ins.

The stand-ins read and write raw JSON (pod status patches, bindings,
events) and keep one long watch open; kubernetes-asyncio's generated models
would only add a conversion per object on the hot path of a 200-pod burst.
Authentication and TLS still come from kubernetes-asyncio's kubeconfig
loader, so any kubeconfig the embedded API server writes works here.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config


class KubeError(RuntimeError):
    """A non-2xx answer; carries the HTTP status and the server's message."""

    def __init__(self, status: int, method: str, path: str, message: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {message}")
        self.status = status


class KubeClient:
    """JSON requests and watches against one API server."""

    def __init__(self, api: client.ApiClient) -> None:
        self._api = api
        self._host = str(api.configuration.host or "").rstrip("/")

    @classmethod
    async def from_kubeconfig(cls, path: Path) -> KubeClient:
        cfg = client.Configuration()
        await config.load_kube_config(config_file=str(path), client_configuration=cfg)
        api = client.ApiClient(cfg)
        # A burst of pods means hundreds of concurrent status writes.
        connector = api.rest_client.pool_manager.connector
        if connector is not None:
            connector._limit = 256
        return cls(api)

    async def close(self) -> None:
        await self._api.close()

    async def _send(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
        timeout: float | None = 30.0,
    ) -> aiohttp.ClientResponse:
        headers: dict[str, str] = {"Content-Type": content_type, "Accept": "application/json"}
        queries: list[tuple[str, str]] = list((query or {}).items())
        await self._api.update_params_for_auth(headers, queries, ["BearerToken"])
        resp: aiohttp.ClientResponse = await self._api.rest_client.request(
            method,
            self._host + path,
            query_params=dict(queries) or None,
            headers=headers,
            body=body,
            _preload_content=False,
            _request_timeout=timeout,
        )
        return resp

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        resp = await self._send(method, path, body, query, content_type)
        async with resp:
            data = await resp.read()
            if resp.status >= 300:
                raise KubeError(resp.status, method, path, _message(data))
            out: dict[str, Any] = json.loads(data) if data else {}
            return out

    async def get(self, path: str, **query: str) -> dict[str, Any]:
        return await self.request("GET", path, query=query or None)

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.request("POST", path, body)

    async def patch(
        self, path: str, body: Any, kind: str = "strategic-merge-patch"
    ) -> dict[str, Any]:
        return await self.request("PATCH", path, body, content_type=f"application/{kind}+json")

    async def delete(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.request("DELETE", path, body)

    async def watch(self, path: str, **query: str) -> AsyncIterator[dict[str, Any]]:
        """Watch events ({"type", "object"}) until the server closes the stream."""
        resp = await self._send("GET", path, query={**query, "watch": "true"}, timeout=None)
        async with resp:
            if resp.status >= 300:
                raise KubeError(resp.status, "GET", path, _message(await resp.read()))
            buf = b""
            async for chunk in resp.content.iter_any():
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        event: dict[str, Any] = json.loads(line)
                        yield event


def _message(data: bytes) -> str:
    try:
        msg = json.loads(data).get("message")
        return str(msg) if msg else data.decode(errors="replace")[:500]
    except ValueError:
        return data.decode(errors="replace")[:500]
