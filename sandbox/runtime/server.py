"""The kubelet's own HTTP endpoint: container logs and exec, as the API server proxies them.

A real kube-apiserver answers `pods/log` and `pods/exec` by calling the
pod's kubelet (`/containerLogs/NS/POD/C`, `/exec/NS/POD/C`) on the port the
Node advertises in status.daemonEndpoints.kubeletEndpoint; the embedded API
server does the same (sandbox/kubeapi/podio.py), so logs and exec go
through the component that owns the processes. Exec speaks Kubernetes'
WebSocket channel protocol (v5.channel.k8s.io, v4 as fallback): binary
frames whose first byte is the channel (0 stdin, 1 stdout, 2 stderr,
3 error/status, 4 resize, 255 close in v5). Every kubelet stand-in of the
sandbox listens on the host's loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import struct
import termios
from collections.abc import AsyncIterator, Callable
from typing import Any

import structlog
from aiohttp import WSMsgType, web

from sandbox.runtime import logs, process
from sandbox.runtime.pod import PodRuntime

log = structlog.get_logger(__name__)

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255

Lookup = Callable[[str, str], PodRuntime | None]


def status(code: int, message: str, reason: str) -> web.Response:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return web.json_response(body, status=code)


def _flag(v: str | None) -> bool:
    return (v or "").lower() in ("1", "true", "yes")


class KubeletServer:
    def __init__(self, lookup: Lookup) -> None:
        self.lookup = lookup
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, host: str = "127.0.0.1") -> int:
        app = web.Application()
        app.router.add_get("/containerLogs/{ns}/{pod}/{container}", self.logs)
        app.router.add_route("*", "/exec/{ns}/{pod}/{container}", self.exec)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, 0)
        await site.start()
        self.port = int(self.runner.addresses[0][1])
        return self.port

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    def _find(self, request: web.Request) -> tuple[PodRuntime, Any] | web.Response:
        m = request.match_info
        rt = self.lookup(m["ns"], m["pod"])
        if rt is None:
            return status(404, f'pod "{m["pod"]}" not found on this node', "NotFound")
        c = rt.container(m["container"])
        if c is None:
            return status(
                400, f"container {m['container']} is not valid for pod {m['pod']}", "BadRequest"
            )
        return rt, c

    # -- logs ----------------------------------------------------------------

    async def logs(self, request: web.Request) -> web.StreamResponse:
        found = self._find(request)
        if isinstance(found, web.Response):
            return found
        rt, c = found
        q = request.query
        pod = request.match_info["pod"]
        previous = _flag(q.get("previous"))
        if previous:
            if c.restart_count == 0:
                return status(
                    400,
                    f'previous terminated container "{c.name}" in pod "{pod}" not found',
                    "BadRequest",
                )
            f = logs.path(rt.env.log_dir, c.name, c.restart_count - 1)
        else:
            f = logs.path(rt.env.log_dir, c.name, c.restart_count)
        if not f.exists():
            reason = (c.state.get("waiting") or {}).get("reason", "ContainerCreating")
            return status(
                400,
                f'container "{c.name}" in pod "{pod}" is waiting to start: {reason}',
                "BadRequest",
            )
        tail = int(q["tailLines"]) if q.get("tailLines", "").lstrip("-").isdigit() else None
        if tail is not None and tail < 0:
            tail = None
        limit = int(q["limitBytes"]) if q.get("limitBytes", "").isdigit() else None
        count = c.restart_count

        def running() -> bool:
            return not previous and c.running() and c.restart_count == count

        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        follow = _flag(q.get("follow"))
        with contextlib.suppress(ConnectionResetError):
            async for chunk in logs.read(f, tail=tail, limit=limit, follow=follow, running=running):
                await resp.write(chunk)
            await resp.write_eof()
        return resp

    # -- exec ----------------------------------------------------------------

    async def exec(self, request: web.Request) -> web.StreamResponse:
        found = self._find(request)
        if isinstance(found, web.Response):
            return found
        _, c = found
        q = request.query
        cmd = q.getall("command", [])
        if not cmd:
            return status(400, "you must specify at least 1 command", "BadRequest")
        proc = c.proc
        if proc is None:
            return status(400, f"container {c.name} is not running", "BadRequest")
        tty = _flag(q.get("tty"))
        want_stdin = _flag(q.get("stdin")) or _flag(q.get("input"))
        ws = web.WebSocketResponse(protocols=PROTOCOLS, max_msg_size=0)
        await ws.prepare(request)
        v5 = ws.ws_protocol == PROTOCOLS[0]
        argv = process.join_argv(proc, str(c.spec.get("workingDir") or "/"), cmd, tty)
        env = dict(c.env or {})
        if tty:
            env.setdefault("TERM", "xterm")
        try:
            code = await (_run_tty if tty else _run_pipes)(ws, argv, env, want_stdin, v5)
        except OSError as e:
            await _send(ws, ERROR, json.dumps(_exec_status(None, cmd, str(e))).encode())
        else:
            await _send(ws, ERROR, json.dumps(_exec_status(code, cmd)).encode())
        await ws.close()
        return ws


def _exec_status(code: int | None, cmd: list[str], error: str = "") -> dict[str, Any]:
    if code is not None and code < 0:
        # Killed by a signal: report it as a container runtime does (128 + signal),
        # the only form the exec protocol's ExitCode cause takes.
        code = 128 - code
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    if code is None:
        return {"metadata": {}, "status": "Failure", "message": error, "reason": "InternalError"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: error executing command "
        f"{cmd}, exit code {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


async def _send(ws: web.WebSocketResponse, channel: int, data: bytes) -> None:
    if not ws.closed:
        with contextlib.suppress(ConnectionResetError):
            await ws.send_bytes(bytes([channel]) + data)


async def _frames(ws: web.WebSocketResponse) -> AsyncIterator[tuple[int, bytes]]:
    """The client's binary frames as (channel, payload): the channel protocol
    both ways of running a command (pipes, tty) read their input by."""
    async for msg in ws:
        if msg.type != WSMsgType.BINARY or not msg.data:
            continue
        yield msg.data[0], msg.data[1:]


def _kill(p: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        p.kill()


async def _finish(p: asyncio.subprocess.Process, feeder: asyncio.Task[None]) -> None:
    """Stop reading the client, and leave no command running or unreaped
    (the client may have gone, or the stream failed, before it exited)."""
    feeder.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await feeder
    if p.returncode is None:
        _kill(p)
        await p.wait()


async def _run_pipes(
    ws: web.WebSocketResponse, argv: list[str], env: dict[str, str], want_stdin: bool, v5: bool
) -> int:
    p = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if want_stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        start_new_session=True,
    )

    async def pump(stream: asyncio.StreamReader | None, channel: int) -> None:
        assert stream is not None
        while chunk := await stream.read(32 * 1024):
            await _send(ws, channel, chunk)

    async def feed() -> None:
        async for ch, data in _frames(ws):
            if ch == STDIN and p.stdin is not None and data:
                with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                    p.stdin.write(data)
                    await p.stdin.drain()
            elif ch == CLOSE and v5 and data[:1] == bytes([STDIN]) and p.stdin is not None:
                p.stdin.close()
        # The client went away: the command has nobody to talk to.
        _kill(p)

    feeder = asyncio.create_task(feed())
    try:
        await asyncio.gather(pump(p.stdout, STDOUT), pump(p.stderr, STDERR))
        return await p.wait()
    finally:
        await _finish(p, feeder)


async def _run_tty(
    ws: web.WebSocketResponse, argv: list[str], env: dict[str, str], want_stdin: bool, v5: bool
) -> int:
    master, slave = os.openpty()
    try:
        p = await asyncio.create_subprocess_exec(
            *argv, stdin=slave, stdout=slave, stderr=slave, env=env
        )
    finally:
        os.close(slave)
    loop = asyncio.get_running_loop()
    out: asyncio.Queue[bytes] = asyncio.Queue()

    def readable() -> None:
        try:
            data = os.read(master, 32 * 1024)
        except OSError:  # EIO: every holder of the slave side is gone
            data = b""
        if not data:
            loop.remove_reader(master)
        out.put_nowait(data)

    loop.add_reader(master, readable)

    async def pump() -> None:
        while data := await out.get():
            await _send(ws, STDOUT, data)

    async def feed() -> None:
        async for ch, data in _frames(ws):
            if ch == STDIN and want_stdin and data:
                with contextlib.suppress(OSError):
                    os.write(master, data)
            elif ch == RESIZE:
                with contextlib.suppress(ValueError, OSError, KeyError):
                    size = json.loads(data)
                    fcntl.ioctl(
                        master,
                        termios.TIOCSWINSZ,
                        struct.pack("HHHH", int(size["Height"]), int(size["Width"]), 0, 0),
                    )
            elif ch == CLOSE and v5 and data[:1] == bytes([STDIN]):
                with contextlib.suppress(OSError):
                    os.write(master, b"\x04")
        _kill(p)

    feeder = asyncio.create_task(feed())
    try:
        await pump()
        return await p.wait()
    finally:
        loop.remove_reader(master)
        os.close(master)
        await _finish(p, feeder)
