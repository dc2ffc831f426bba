"""HTTP routing and the REST verbs: Kubernetes' protocol on aiohttp.

URLs are resolved against the registry (so CRD resources appear the moment
their CRD exists), requests are parsed into the verbs of `objects.Api`, and
results are rendered as JSON objects, lists, Tables or Status errors, as
kubernetes-asyncio and kubectl expect from a real server. Watches are
handed to `watch.stream`.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web
from multidict import MultiDict

from . import discovery, kinds, params, tables
from .errors import ApiError, bad_request
from .metrics import Metrics
from .options import DeleteOptions
from .podio import PodIO
from .resources import NS_GR, Obj, ResourceType
from .store import Entry, Watcher, dumps
from .verbs import Api
from .watch import stream

log = structlog.get_logger(__name__)

_JSON = "application/json"
_NOT_FOUND = ApiError(404, "the server could not find the requested resource", "NotFound", {})


@dataclass
class Target:
    rt: ResourceType
    ns: str | None  # None: all namespaces (collection) or cluster-scoped
    name: str
    sub: str
    watch_path: bool


def _json(obj: Any, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    resp = web.Response(body=dumps(obj), status=status, content_type=_JSON)
    for w in warnings or []:
        resp.headers.add("Warning", "299 - " + json.dumps(w))
    return resp


def _error(err: ApiError) -> web.Response:
    return web.Response(body=dumps(err.status()), status=err.code, content_type=_JSON)


_SUBRESOURCE_METHODS = {
    "status": ("GET", "PUT", "PATCH"),
    "binding": ("POST",),
    "eviction": ("POST",),
    "finalize": ("PUT",),
    "scale": ("GET", "PUT", "PATCH"),
}


def _success(code: int | None = None, details: Obj | None = None) -> Obj:
    """A metav1 Status of success, as answered where there is no object."""
    st: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    if code is not None:
        st["code"] = code
    if details is not None:
        st["details"] = details
    return st


def _not_allowed() -> ApiError:
    return ApiError(
        405, "the server does not allow this method on the requested resource", "MethodNotAllowed"
    )


class Http:
    def __init__(self, api: Api, bookmark_interval: float) -> None:
        self.api = api
        self.registry = api.registry
        self.bookmark_interval = bookmark_interval
        self.address = ""
        self._watch_tasks: set[asyncio.Event] = set()
        self._stopping = asyncio.Event()
        self.metrics = Metrics(api.store)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        PodIO(self.api).routes(app)  # pods/log, pods/exec: proxied to the kubelet
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        return app

    def stop_watches(self) -> None:
        self._stopping.set()

    # ---- routing -----------------------------------------------------------
    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        t0 = time.perf_counter()
        try:
            resp = await self._dispatch(request)
        except ApiError as e:
            resp = _error(e)
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as e:
            log.exception("internal error", path=request.path)
            resp = _error(ApiError(500, f"Internal error occurred: {e}", "InternalError"))
        self.metrics.observe(request, resp.status, time.perf_counter() - t0)
        return resp

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        parts = [p for p in path.split("/") if p]
        method = request.method
        if method == "GET":
            static = self._static(path, parts, request.headers.get("Accept", ""))
            if static is not None:
                return static
        if not parts or parts[0] not in ("api", "apis"):
            raise _NOT_FOUND
        if parts[0] == "api":
            if len(parts) < 2:
                raise _NOT_FOUND
            group, version, rest = "", parts[1], parts[2:]
        else:
            if len(parts) < 3:
                raise _NOT_FOUND
            group, version, rest = parts[1], parts[2], parts[3:]
        target = self._resolve(group, version, rest)
        return await self._serve(request, target)

    def _static(self, path: str, parts: list[str], accept: str) -> web.StreamResponse | None:
        reg = self.registry
        if path == "/version":
            return _json(discovery.VERSION)
        if path in ("/api", "/apis") and discovery.wants_aggregated(accept):
            body = dumps(discovery.aggregated(reg, legacy=path == "/api"))
            return web.Response(body=body, headers={"Content-Type": discovery.AGGREGATED})
        if path == "/api":
            return _json(discovery.api_versions(self.address))
        if path == "/apis":
            return _json(discovery.api_group_list(reg))
        if path in ("/healthz", "/readyz", "/livez"):
            return web.Response(text="ok")
        if path == "/metrics":
            body, ctype = self.metrics.render()
            return web.Response(body=body, headers={"Content-Type": ctype})
        if path == "/openapi/v3":
            return _json(discovery.openapi_root(reg))
        if path.startswith("/openapi/v3/"):
            sub = parts[2:]
            doc = None
            if len(sub) == 2 and sub[0] == "api":
                doc = discovery.openapi_gv(reg, "", sub[1])
            elif len(sub) == 3 and sub[0] == "apis":
                doc = discovery.openapi_gv(reg, sub[1], sub[2])
            if doc is None:
                raise _NOT_FOUND
            return _json(doc)
        if path == "/openapi/v2":
            body, ctype = discovery.openapi_v2(accept)
            return web.Response(body=body, headers={"Content-Type": ctype})
        if len(parts) == 2 and parts[0] == "api":
            doc = discovery.resource_list(reg, "", parts[1])
            if doc is None:
                raise _NOT_FOUND
            return _json(doc)
        if len(parts) == 2 and parts[0] == "apis":
            g = discovery.api_group(reg, parts[1])
            if g is None:
                raise _NOT_FOUND
            return _json(g)
        if len(parts) == 3 and parts[0] == "apis":
            doc = discovery.resource_list(reg, parts[1], parts[2])
            if doc is None:
                raise _NOT_FOUND
            return _json(doc)
        return None

    def _resolve(self, group: str, version: str, rest: list[str]) -> Target:
        watch_path = False
        if rest and rest[0] == "watch":
            watch_path, rest = True, rest[1:]
        ns: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
            ns, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise _NOT_FOUND
        rt = self.registry.lookup(group, version, rest[0])
        if rt is None:
            raise _NOT_FOUND
        if ns is not None and not rt.namespaced:
            raise _NOT_FOUND
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        if sub and not (
            (sub == "status" and rt.status)
            or sub in rt.extra_subresources
            or (sub == "finalize" and rt.gr == NS_GR)
        ):
            raise _NOT_FOUND
        if rt.namespaced and name and ns is None:
            raise _NOT_FOUND
        return Target(rt, ns, name, sub, watch_path)

    async def _serve(self, request: web.Request, t: Target) -> web.StreamResponse:
        q = request.query
        m = request.method
        rt = t.rt
        if t.sub and m not in _SUBRESOURCE_METHODS.get(t.sub, ()):
            raise _not_allowed()
        if t.watch_path or (m == "GET" and not t.sub and params.flag(q.get("watch"))):
            if t.name:
                q = MultiDict(q)
                fs = q.get("fieldSelector", "")
                extra = f"metadata.name={t.name}"
                q["fieldSelector"] = f"{fs},{extra}" if fs else extra
            return await self._watch(request, rt, t.ns, q)
        if t.sub == "scale":
            return await self._scale(request, t)
        if m == "GET":
            if t.name:
                entry = self.api.objects.get(rt, t.ns or "", t.name)
                return self._render_one(request, rt, entry)
            return self._list(request, rt, t.ns)
        if m == "POST":
            if t.sub == "eviction":
                # No PodDisruptionBudgets here: an eviction is a delete with
                # the eviction's options.
                body = await params.read_body(request)
                if not isinstance(body, dict):
                    raise bad_request("the body of an eviction must be a JSON object")
                opts = body.get("deleteOptions") or {}
                pre = opts.get("preconditions") or {}
                await self.api.deletes.delete(
                    rt,
                    t.ns or "",
                    t.name,
                    DeleteOptions(
                        grace_period=opts.get("gracePeriodSeconds"),
                        precondition_uid=pre.get("uid"),
                        precondition_rv=pre.get("resourceVersion"),
                        propagation=opts.get("propagationPolicy"),
                    ),
                )
                return _json(_success(code=201), 201)
            if t.sub == "binding":
                body = await params.read_body(request)
                await self.api.writes.bind(rt, t.ns or "", t.name, body)
                return _json(_success(code=201), 201)
            if t.name:
                raise _not_allowed()
            if rt.namespaced and t.ns is None:
                raise _NOT_FOUND
            body = await params.read_body(request)
            obj, warnings = await self.api.writes.create(
                rt, t.ns or "", body, params.write_options(q)
            )
            return _json(self._out(rt, obj), 201, warnings)
        if m == "PUT":
            if not t.name:
                raise _not_allowed()
            body = await params.read_body(request)
            if t.sub == "finalize":
                obj = await self.api.deletes.finalize_namespace(t.name, body)
                return _json(obj)
            obj, warnings, created = await self.api.writes.update(
                rt,
                t.ns or "",
                t.name,
                body,
                t.sub if t.sub == "status" else "",
                params.write_options(q),
            )
            return _json(self._out(rt, obj), 201 if created else 200, warnings)
        if m == "PATCH":
            if not t.name:
                raise _not_allowed()
            ctype = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
            raw = await request.read()
            obj, warnings = await self.api.writes.patch(
                rt,
                t.ns or "",
                t.name,
                ctype,
                raw,
                t.sub if t.sub == "status" else "",
                params.write_options(q),
            )
            return _json(self._out(rt, obj), 200, warnings)
        if m == "DELETE":
            opts = await params.delete_options(request)
            if not t.name:
                if rt.namespaced and t.ns is None:
                    raise _NOT_FOUND
                labels, fields = params.selectors(q, rt)
                await self.api.deletes.delete_collection(rt, t.ns, labels, fields, opts)
                return _json(_success())
            obj, removed = await self.api.deletes.delete(rt, t.ns or "", t.name, opts)
            if kinds.spec_for(rt).delete_returns_object or not removed:
                return _json(self._out(rt, obj), 200)
            details = {
                "name": t.name,
                "group": rt.group,
                "kind": rt.plural,
                "uid": obj["metadata"].get("uid"),
            }
            return _json(_success(details=details))
        raise _not_allowed()

    async def _scale(self, request: web.Request, t: Target) -> web.Response:
        """The scale subresource: the parent as an autoscaling/v1 Scale."""
        scales, ns, m = self.api.scales, t.ns or "", request.method
        warnings: list[str] = []
        if m == "GET":
            scale = scales.get(t.rt, ns, t.name)
            if params.accept_mode(request) == "table":
                meta = {"resourceVersion": scale["metadata"].get("resourceVersion", "")}
                return _json(tables.scale_table(scale, request.query.get("includeObject"), meta))
        elif m == "PUT":
            body = await params.read_body(request)
            scale, warnings = await scales.update(
                t.rt, ns, t.name, body, params.write_options(request.query)
            )
        else:
            ctype = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
            scale, warnings = await scales.patch(
                t.rt, ns, t.name, ctype, await request.read(), params.write_options(request.query)
            )
        return _json(scale, 200, warnings)

    @staticmethod
    def _out(rt: ResourceType, obj: Obj) -> Obj:
        """A custom object read through another served version."""
        if rt.custom and obj.get("apiVersion") != rt.api_version:
            return {**obj, "apiVersion": rt.api_version}
        return obj

    def _raw(self, rt: ResourceType, e: Entry) -> bytes:
        if rt.custom and e.obj.get("apiVersion") != rt.api_version:
            return dumps(self._out(rt, e.obj))
        return e.raw

    def _render_one(self, request: web.Request, rt: ResourceType, e: Entry) -> web.Response:
        mode = params.accept_mode(request)
        if mode == "table":
            include = request.query.get("includeObject", "Metadata")
            meta = {"resourceVersion": e.obj["metadata"]["resourceVersion"]}
            return _json(tables.table(rt, [self._out(rt, e.obj)], include, meta))
        if mode == "partial":
            return _json(tables.partial_metadata(e.obj))
        return web.Response(body=self._raw(rt, e), content_type=_JSON)

    def _list(self, request: web.Request, rt: ResourceType, ns: str | None) -> web.Response:
        q = request.query
        labels, fields = params.selectors(q, rt)
        limit = params.int_param(q, "limit") or 0
        params.check_list_version(
            q.get("resourceVersion", ""), q.get("resourceVersionMatch", ""), self.api.store.rv
        )
        res = self.api.lists.list_objects(rt, ns, labels, fields, limit, q.get("continue", ""))
        meta: Obj = {"resourceVersion": str(res.rv)}
        if res.continue_token:
            meta["continue"] = res.continue_token
            meta["remainingItemCount"] = res.remaining
        mode = params.accept_mode(request)
        if mode == "table":
            include = q.get("includeObject", "Metadata")
            return _json(tables.table(rt, [self._out(rt, e.obj) for e in res.items], include, meta))
        if mode == "partial":
            return _json(
                {
                    "kind": "PartialObjectMetadataList",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": meta,
                    "items": [tables.partial_metadata(e.obj) for e in res.items],
                }
            )
        head = dumps({"kind": rt.kind + "List", "apiVersion": rt.api_version, "metadata": meta})
        body = head[:-1] + b',"items":[' + b",".join(self._raw(rt, e) for e in res.items) + b"]}"
        return web.Response(body=body, content_type=_JSON)

    # ---- watch -------------------------------------------------------------
    async def _watch(
        self, request: web.Request, rt: ResourceType, ns: str | None, q: params.Query
    ) -> web.StreamResponse:
        labels, fields = params.selectors(q, rt)
        timeout = params.int_param(q, "timeoutSeconds")
        bookmarks = params.flag(q.get("allowWatchBookmarks"))
        send_initial = params.flag(q.get("sendInitialEvents"))
        rv_param = q.get("resourceVersion", "")
        since: int | None = None
        if rv_param not in ("", "0") and not send_initial:
            try:
                since = int(rv_param)
            except ValueError:
                raise bad_request(f'invalid resource version: "{rv_param}"') from None
            if since > self.api.store.rv:
                # A version this store never issued (lost in a crash, or from
                # before a state reset). A real server (etcd) cannot go back;
                # here the client must relist, so it gets what makes every
                # client relist: 410 Gone, as an ERROR event like any other.
                since = -1
        mode = params.accept_mode(request)
        include = q.get("includeObject", "Metadata")

        def render(kind: str, obj: Obj, raw: bytes | None) -> bytes:
            if mode == "table":
                return (
                    dumps(
                        {
                            "type": kind,
                            "object": tables.table(
                                rt,
                                [self._out(rt, obj)],
                                include,
                                {"resourceVersion": obj["metadata"].get("resourceVersion", "")},
                            ),
                        }
                    )
                    + b"\n"
                )
            if mode == "partial":
                return dumps({"type": kind, "object": tables.partial_metadata(obj)}) + b"\n"
            if raw is None or (rt.custom and obj.get("apiVersion") != rt.api_version):
                raw = dumps(self._out(rt, obj))
            return b'{"type":"' + kind.encode() + b'","object":' + raw + b"}\n"

        w = Watcher(rt.gr, ns if rt.namespaced else None, labels, fields, render)
        return await stream(
            request,
            self.api.store,
            rt,
            w,
            since,
            timeout,
            bookmarks,
            send_initial,
            self.bookmark_interval,
            self._stopping,
        )
