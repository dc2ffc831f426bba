"""Kubernetes client plumbing shared by kovn services and the sandbox.

`connect` builds a kubernetes-asyncio ApiClient from a kubeconfig path or,
with none given, from the in-cluster service account. `KubeClient` talks
JSON dicts over that ApiClient: kovn reads a handful of fields from many
thousands of objects, and kubernetes-asyncio's model deserialisation costs
far more than the JSON parse itself. Failures become `KubeError` with the
API's status code and reason, so callers can tell a 404 from a 409 from a
410 Gone without parsing messages. The sandbox's kubelet and scheduler
stand-ins use the same client (status patches, bindings, events, one long
pod watch), with a connection pool sized for a burst of hundreds of writes.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import grpc
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from services.common.errors import KovnError

Obj = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


#: How an HTTP status from the API maps onto kovn's taxonomy.
_HTTP_CODES: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ABORTED,
    410: grpc.StatusCode.FAILED_PRECONDITION,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.UNAVAILABLE,
}
#: Statuses worth trying again: no answer, throttled, a conflict (re-read and
#: retry), or the server's own trouble.
_RETRYABLE_HTTP = frozenset({0, 409, 429, 500, 502, 503, 504})


class KubeError(KovnError):
    """A failed API call: HTTP status (0: no response), reason and message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.code = _HTTP_CODES.get(
            status, grpc.StatusCode.UNAVAILABLE if status == 0 or status >= 500 else self.code
        )
        self.retryable = status in _RETRYABLE_HTTP


async def connect(kubeconfig: str = "", *, pool_size: int = 128) -> client.ApiClient:
    """An ApiClient for `kubeconfig`, or the in-cluster account when empty."""
    configuration = client.Configuration()
    if kubeconfig:
        await config.load_kube_config(
            config_file=kubeconfig, client_configuration=configuration, persist_config=False
        )
    else:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    configuration.connection_pool_maxsize = pool_size
    api = client.ApiClient(configuration)
    # kubernetes-asyncio opens its aiohttp session with trust_env=True, which
    # makes every request look up proxy variables and parse ~/.netrc: a large
    # share of CPU per call at thousands of calls per second. A proxy, if
    # one is wanted, is configured explicitly (Configuration.proxy) instead.
    session = api.rest_client.pool_manager
    if hasattr(session, "_trust_env") and not configuration.proxy:
        session._trust_env = False
    return api


def resource_path(
    group: str, version: str, plural: str, namespace: str = "", name: str = "", sub: str = ""
) -> str:
    """The REST path of a collection or object ("" group: the core API)."""
    base = f"/api/{version}" if not group else f"/apis/{group}/{version}"
    if namespace:
        base += f"/namespaces/{namespace}"
    base += f"/{plural}"
    if name:
        base += f"/{name}"
    if sub:
        base += f"/{sub}"
    return base


async def _error(resp: aiohttp.ClientResponse) -> KubeError:
    body = await resp.read()
    try:
        status = json.loads(body)
        return KubeError(resp.status, status.get("reason", ""), status.get("message", ""))
    except (ValueError, AttributeError):
        return KubeError(resp.status, resp.reason or "", body.decode(errors="replace")[:300])


class KubeClient:
    """JSON-dict access to the API through a kubernetes-asyncio ApiClient.

    Requests go straight to the ApiClient's aiohttp session (the ApiClient
    adds only authentication and TLS): its `call_api` would walk every body
    through `sanitize_for_serialization`, a cost per request that a burst of
    hundreds of pod writes (the sandbox's kubelets) or the controller's
    status patches do not need for plain JSON dicts.
    """

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self._host = str(api.configuration.host or "").rstrip("/")

    async def close(self) -> None:
        await self.api.close()

    async def _send(
        self,
        method: str,
        path: str,
        query: Mapping[str, str | int] | None,
        body: Any,
        content_type: str,
        request_timeout: float | None,
    ) -> aiohttp.ClientResponse:
        """One request, the response unread; connection failures become KubeError."""
        headers = {
            **self.api.default_headers,
            "Content-Type": content_type,
            "Accept": "application/json",
        }
        queries: list[tuple[str, str | int]] = list((query or {}).items())
        try:
            await self.api.update_params_for_auth(headers, queries, ["BearerToken"])
            resp: aiohttp.ClientResponse = await self.api.rest_client.request(
                method,
                self._host + path,
                query_params=dict(queries) or None,
                headers=headers,
                body=body,
                _preload_content=False,
                _request_timeout=request_timeout,
            )
        except ApiException as exc:
            raise KubeError(exc.status or 0, str(exc.reason), str(exc.body)) from None
        except OSError as exc:
            raise KubeError(0, "ConnectionError", str(exc)) from None
        except TimeoutError:
            raise KubeError(0, "Timeout", f"{method} {path}") from None
        return resp

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | int] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        request_timeout: float | None = 30.0,
    ) -> Obj:
        """The decoded answer ({} for an empty one); KubeError unless 2xx."""
        resp = await self._send(method, path, query, body, content_type, request_timeout)
        try:
            if not 200 <= resp.status <= 299:
                raise await _error(resp)
            data = await resp.read()
            out: Obj = json.loads(data) if data else {}
            return out
        finally:
            resp.release()

    async def get(self, path: str, *, query: Mapping[str, str | int] | None = None) -> Obj:
        return await self.request("GET", path, query=query)

    async def create(self, path: str, body: Obj) -> Obj:
        """POST: a new object, or a subresource such as pods/binding."""
        return await self.request("POST", path, body=body)

    async def merge_patch(self, path: str, patch: Obj) -> Obj:
        return await self.request("PATCH", path, body=patch, content_type=MERGE_PATCH)

    async def strategic_merge_patch(self, path: str, patch: Obj) -> Obj:
        """A patch whose lists merge by key (conditions by type), as kubelets send."""
        return await self.request("PATCH", path, body=patch, content_type=STRATEGIC_MERGE_PATCH)

    async def replace(self, path: str, body: Obj) -> Obj:
        return await self.request("PUT", path, body=body)

    async def delete(self, path: str, options: Obj | None = None) -> Obj:
        """DELETE, with DeleteOptions (grace period, preconditions) when given."""
        return await self.request("DELETE", path, body=options)

    async def list(self, path: str, *, limit: int = 2000) -> tuple[list[Obj], str]:
        """Every item of a collection (paged) and the list's resourceVersion."""
        items: list[Obj] = []
        token = ""
        while True:
            query: dict[str, str | int] = {"limit": limit}
            if token:
                query["continue"] = token
            page = await self.request("GET", path, query=query, request_timeout=120.0)
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            token = meta.get("continue") or ""
            if not token:
                return items, str(meta.get("resourceVersion", ""))

    async def watch(
        self,
        path: str,
        resource_version: str,
        *,
        timeout_seconds: int | None = 300,
        bookmarks: bool = True,
        query: Mapping[str, str | int] | None = None,
    ) -> AsyncIterator[Obj]:
        """Watch events (dicts with type and object) from `resource_version`.

        Ends when the server closes the stream (after `timeout_seconds`, or
        the server's own limit when None); a 410 arrives as an ERROR event,
        as the API sends it. `query` adds selectors.
        """
        params: dict[str, str | int] = {**(query or {}), "watch": "true"}
        if resource_version:
            params["resourceVersion"] = resource_version
        if bookmarks:
            params["allowWatchBookmarks"] = "true"
        if timeout_seconds is not None:
            params["timeoutSeconds"] = timeout_seconds
        resp = await self._send("GET", path, params, None, "application/json", None)
        try:
            if not 200 <= resp.status <= 299:
                raise await _error(resp)
            buffer = b""
            async for chunk in resp.content.iter_any():
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
            if buffer.strip():
                yield json.loads(buffer)
        finally:
            resp.close()
