"""Container log files, kept the way kubelet keeps them, and reading them back.

Kubelet writes each container's output to
/var/log/pods/<ns>_<name>_<uid>/<container>/<restartCount>.log and keeps
the previous file for `kubectl logs --previous`. Here the process's stdout
and stderr are that file itself (no copying through the kubelet), so the
files hold the raw output, without CRI timestamps; `timestamps=true` is not
offered. Follow ends when the container is no longer running, as kubelet's
does.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from sandbox import workers

CHUNK = 64 * 1024
#: A followed file is re-read this often when nothing new arrived.
FOLLOW_INTERVAL = 0.2


def pod_dir(root: Path, ns: str, name: str, uid: str) -> Path:
    return root / f"{ns}_{name}_{uid}"


def path(pod_logs: Path, container: str, restart: int) -> Path:
    return pod_logs / container / f"{restart}.log"


def prune(pod_logs: Path, container: str, current: int) -> None:
    """Keep the current and the previous file only, as kubelet does."""
    d = pod_logs / container
    if not d.is_dir():
        return
    for f in d.glob("*.log"):
        stem = f.stem
        if stem.isdigit() and int(stem) < current - 1:
            f.unlink(missing_ok=True)


def _tail_offset(f: Path, lines: int) -> int:
    """Offset where the last `lines` lines of f begin."""
    size = f.stat().st_size
    if lines <= 0:
        return size
    with f.open("rb") as fh:
        pos, found = size, 0
        # A trailing newline ends the last line; it does not start a new one.
        if size:
            fh.seek(size - 1)
            if fh.read(1) == b"\n":
                pos -= 1
        while pos > 0:
            step = min(CHUNK, pos)
            fh.seek(pos - step)
            buf = fh.read(step)
            i = len(buf)
            while True:
                i = buf.rfind(b"\n", 0, i)
                if i < 0:
                    break
                found += 1
                if found == lines:
                    return pos - step + i + 1
            pos -= step
    return 0


async def read(
    f: Path,
    *,
    tail: int | None,
    limit: int | None,
    follow: bool,
    running: Callable[[], bool],
) -> AsyncIterator[bytes]:
    """The file's content from the tail offset; with follow, what is appended
    while the container runs."""
    offset = 0 if tail is None else await workers.pool().run(lambda: _tail_offset(f, tail))
    sent = 0
    fd = await workers.pool().run(lambda: os.open(f, os.O_RDONLY | os.O_CLOEXEC))
    try:
        while True:
            chunk = await workers.pool().run(functools.partial(os.pread, fd, CHUNK, offset))
            if chunk:
                if limit is not None:
                    chunk = chunk[: max(0, limit - sent)]
                offset += len(chunk)
                sent += len(chunk)
                if chunk:
                    yield chunk
                if limit is not None and sent >= limit:
                    return
                continue
            if not follow:
                return
            if not running():
                follow = False  # one more read: what it wrote before exiting
                continue
            await asyncio.sleep(FOLLOW_INTERVAL)
    finally:
        os.close(fd)
