"""Liveness, readiness and startup probes, run by the kubelet from the pod's netns.

A tcpSocket or httpGet probe needs a socket in the pod's network namespace:
a worker thread enters the netns just long enough to create the socket (a
socket keeps the namespace it was made in), and the connect and the HTTP
exchange then run on the event loop, so a probe costs two setns calls and
one connection, no process. exec probes run the command in the container's
namespaces (nsenter), with timeoutSeconds enforced as kubelet does.
Results follow kubelet's prober worker: thresholds count consecutive
results, readiness starts as failure, liveness as success, and neither runs
until the startup probe has succeeded.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import signal
import socket
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox import netns, workers

USER_AGENT = "kube-probe/1.32"


@dataclass
class Target:
    """Where a container's probes go."""

    netns: str  # path
    pod_ip: str
    ports: dict[str, int]  # named container ports
    exec_argv: Callable[[list[str]], list[str]]  # wraps a command to run in the container
    env: dict[str, str]


def _port(value: Any, t: Target) -> int:
    if isinstance(value, int):
        return value
    s = str(value)
    if s.isdigit():
        return int(s)
    if s in t.ports:
        return t.ports[s]
    raise ValueError(f"port {s!r} is not a named port of the container")


def _socket_in(ns_path: str, family: int) -> socket.socket:
    with netns.entered(Path(ns_path)):
        s = socket.socket(family, socket.SOCK_STREAM)
    s.setblocking(False)
    return s


async def _connect(t: Target, host: str, port: int, timeout: float) -> socket.socket:
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    sock = await workers.pool().run(lambda: _socket_in(t.netns, family))
    try:
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (host, port)), timeout)
    except BaseException:
        sock.close()
        raise
    return sock


async def tcp(spec: dict[str, Any], t: Target, timeout: float) -> tuple[bool, str]:
    host = str(spec.get("host") or t.pod_ip)
    port = _port(spec.get("port"), t)
    try:
        sock = await _connect(t, host, port, timeout)
    except (OSError, TimeoutError) as e:
        return False, f"dial tcp {host}:{port}: {e or 'i/o timeout'}"
    sock.close()
    return True, ""


async def http(spec: dict[str, Any], t: Target, timeout: float) -> tuple[bool, str]:
    scheme = str(spec.get("scheme") or "HTTP").upper()
    host = str(spec.get("host") or t.pod_ip)
    port = _port(spec.get("port"), t)
    path = str(spec.get("path") or "/")
    if not path.startswith("/"):
        path = "/" + path
    if scheme != "HTTP":
        return False, f"scheme {scheme} is not supported by the sandbox kubelet"
    headers = {"Host": f"{host}:{port}", "User-Agent": USER_AGENT, "Accept": "*/*"}
    for h in spec.get("httpHeaders") or []:
        headers[str(h.get("name", ""))] = str(h.get("value", ""))
    headers["Connection"] = "close"
    req = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    url = f"http://{host}:{port}{path}"

    async def exchange() -> int:
        sock = await _connect(t, host, port, timeout)
        reader, writer = await asyncio.open_connection(sock=sock)
        try:
            writer.write(req.encode() + b"\r\n")
            line = await reader.readline()
            parts = line.split()
            if len(parts) < 2 or not parts[1].isdigit():
                raise ValueError(f"malformed HTTP response {line[:80]!r}")
            return int(parts[1])
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    try:
        code = await asyncio.wait_for(exchange(), timeout)
    except (OSError, TimeoutError, ValueError) as e:
        return False, f'Get "{url}": {e or "context deadline exceeded"}'
    if 200 <= code < 400:
        return True, ""
    return False, f"HTTP probe failed with statuscode: {code}"


def _run(argv: list[str], env: dict[str, str], timeout: float) -> tuple[int | None, bytes]:
    with subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    ) as p:
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
            return None, b""
        return p.returncode, out


async def exec_(spec: dict[str, Any], t: Target, timeout: float) -> tuple[bool, str]:
    cmd = [str(x) for x in spec.get("command") or []]
    if not cmd:
        return False, "exec probe without command"
    rc, out = await workers.pool("plugins").run(lambda: _run(t.exec_argv(cmd), t.env, timeout))
    if rc is None:
        return False, f"command {cmd!r} timed out"
    if rc == 0:
        return True, ""
    return False, out.decode(errors="replace")[-1024:] or f"exit code {rc}"


async def once(probe: dict[str, Any], t: Target) -> tuple[bool, str]:
    timeout = float(probe.get("timeoutSeconds") or 1)
    try:
        if "tcpSocket" in probe:
            return await tcp(probe["tcpSocket"], t, timeout)
        if "httpGet" in probe:
            return await http(probe["httpGet"], t, timeout)
        if "exec" in probe:
            return await exec_(probe["exec"], t, timeout)
        if "grpc" in probe:
            return False, "grpc probes are not supported by the sandbox kubelet"
    except ValueError as e:
        return False, str(e)
    return False, "probe has no handler"


async def run(
    kind: str,
    probe: dict[str, Any],
    t: Target,
    on_result: Callable[[bool, str], Awaitable[bool]],
    initial: bool,
) -> None:
    """Probe until on_result(ok, message), called whenever the thresholded
    result flips, returns True.

    initial: the result before any probe ran (readiness False, liveness True).
    """
    period = float(probe.get("periodSeconds") or 10)
    success_threshold = int(probe.get("successThreshold") or 1)
    failure_threshold = int(probe.get("failureThreshold") or 3)
    result = initial
    streak_ok = streak_fail = 0
    await asyncio.sleep(float(probe.get("initialDelaySeconds") or 0))
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        ok, msg = await once(probe, t)
        if ok:
            streak_ok, streak_fail = streak_ok + 1, 0
            if not result and streak_ok >= success_threshold:
                result = True
                if await on_result(True, ""):
                    return
        else:
            streak_ok, streak_fail = 0, streak_fail + 1
            if result and streak_fail >= failure_threshold:
                result = False
                if await on_result(False, f"{kind} probe failed: {msg}"):
                    return
            elif not result and kind != "Readiness" and streak_fail >= failure_threshold:
                # liveness/startup: each run of failures past the threshold acts
                if await on_result(False, f"{kind} probe failed: {msg}"):
                    return
                streak_fail = 0
        await asyncio.sleep(max(0.0, period - (loop.time() - started)))
