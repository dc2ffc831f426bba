"""Serving one watch: the newline-delimited JSON event stream.

Separate from request routing because its life is different: it registers a
`Watcher` with the store, replays history or sends the initial state, then
relays queued events until the timeout, a disconnect or shutdown, with
BOOKMARK events when the client allows them. A too-old resourceVersion is
answered the way Kubernetes does for watches: HTTP 200 and one ERROR event
carrying a 410 Status.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiohttp import web

from .errors import ApiError
from .resources import Obj, ResourceType
from .store import Entry, Store, Watcher, dumps


async def stream(
    request: web.Request,
    store: Store,
    rt: ResourceType,
    w: Watcher,
    since: int | None,
    timeout: int | None,
    bookmarks: bool,
    send_initial: bool,
    bookmark_interval: float,
    stopping: asyncio.Event,
) -> web.StreamResponse:
    resp = web.StreamResponse(
        status=200,
        headers={"Content-Type": "application/json", "Cache-Control": "no-cache, private"},
    )
    resp.enable_chunked_encoding()
    initial: list[Entry] = []
    if since is None:
        initial = [e for _, e in store.entries(rt.gr, w.ns) if w.matches(e.obj)]
    try:
        store.watch(w, since, initial)
    except ApiError as e:
        await resp.prepare(request)
        await resp.write(dumps({"type": "ERROR", "object": e.status()}) + b"\n")
        await resp.write_eof()
        return resp

    def bookmark(extra: Obj | None = None) -> bytes:
        meta: Obj = {"resourceVersion": str(max(store.committed_rv, w.min_rv))}
        if extra:
            meta["annotations"] = extra
        return (
            dumps(
                {
                    "type": "BOOKMARK",
                    "object": {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta},
                }
            )
            + b"\n"
        )

    if send_initial and bookmarks:
        w.push(bookmark({"k8s.io/initial-events-end": "true"}))
    deadline = time.monotonic() + (timeout if timeout is not None else 1800)
    next_bookmark = time.monotonic() + bookmark_interval
    try:
        await resp.prepare(request)
        while not stopping.is_set():
            now = time.monotonic()
            if now >= deadline:
                tail = []
                while not w.queue.empty():
                    item = w.queue.get_nowait()
                    if item is not None:
                        tail.append(item)
                if bookmarks:
                    tail.append(bookmark())
                if tail:
                    await resp.write(b"".join(tail))
                break
            wait = min(deadline, next_bookmark) - now if bookmarks else deadline - now
            try:
                # wait_for costs a task per call: only pay it when idle.
                item = (
                    w.queue.get_nowait()
                    if not w.queue.empty()
                    else await asyncio.wait_for(w.queue.get(), timeout=max(wait, 0))
                )
            except TimeoutError:
                if bookmarks and time.monotonic() >= next_bookmark:
                    await resp.write(bookmark())
                    next_bookmark = time.monotonic() + bookmark_interval
                continue
            if item is None:
                break
            chunk = [item]
            while not w.queue.empty():
                more = w.queue.get_nowait()
                if more is None:
                    w.closed = True
                    break
                chunk.append(more)
            await resp.write(b"".join(chunk))
            if w.closed:
                break
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await resp.write_eof()
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        store.unwatch(w)
    return resp
