"""Run a CNI plugin chain the way containerd's libcni does.

The sandbox kubelet must exercise a CNI plugin exactly as a real node would,
so that what passes here passes under containerd: the conflist's plugins
run in order on ADD and in reverse on DEL, each gets its plugin config on
stdin with the network `name`, `cniVersion` and the previous plugin's
result as `prevResult` injected, the runtime's environment variables, and
the ADD result is cached on disk so DEL can hand it back as `prevResult`.
Plugins run inside the node's network namespace (the node's "host"); only
the network namespace is entered, as `nsenter --net` does.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox import netns, workers
from sandbox.layout import write_atomic


# Plugins are spawned from worker threads: fork/exec run on the event loop
# stalled it for milliseconds per plugin, hundreds of times in a pod burst.
def _run_plugin(
    argv: list[str], stdin: bytes, env: dict[str, str], timeout: float, host: Path | None
) -> subprocess.CompletedProcess[bytes]:
    """On a worker thread: spawn the plugin inside netns `host` and wait for it.

    The thread joins the node's netns just for the spawn (the child keeps
    it) and returns home at once: an nsenter in front of every plugin would
    cost one more exec per call.
    """
    with netns.entered(host):
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


class CniError(RuntimeError):
    """A plugin failed; carries the CNI error code, message and details."""

    def __init__(self, plugin: str, command: str, code: int, msg: str, details: str = "") -> None:
        text = f"plugin {plugin} {command} failed (code {code}): {msg}"
        if details:
            text += f": {details}"
        super().__init__(text)
        self.plugin = plugin
        self.code = code
        self.msg = msg
        self.details = details


class CniConfigError(ValueError):
    """The CNI config dir holds no usable network configuration."""


@dataclass
class Network:
    name: str
    cni_version: str
    plugins: list[dict[str, Any]]
    source: Path


_cache: dict[tuple[Path, int, int], Network] = {}


def load_network(conf_dir: Path) -> Network:
    """The first *.conflist / *.conf in lexical order, as libcni picks it.

    Parsed once per file version (path, mtime, size): every ADD and DEL asks.
    """
    try:
        names = sorted(
            n for n in os.listdir(conf_dir) if n.endswith((".conflist", ".conf", ".json"))
        )
    except OSError as e:
        raise CniConfigError(f"CNI config dir {conf_dir}: {e}") from e
    if not names:
        raise CniConfigError(f"no CNI network config in {conf_dir}")
    path = conf_dir / names[0]
    try:
        st = path.stat()
        key = (path, st.st_mtime_ns, st.st_size)
    except OSError as e:
        raise CniConfigError(f"{path}: {e}") from e
    cached = _cache.get(key)
    if cached is None:
        cached = _cache[key] = _parse_network(path)
    return cached


def _parse_network(path: Path) -> Network:
    try:
        raw = json.loads(path.read_text())
    except ValueError as e:
        raise CniConfigError(f"{path}: invalid JSON: {e}") from e
    if path.suffix == ".conflist":
        plugins = raw.get("plugins")
        if not isinstance(plugins, list) or not plugins:
            raise CniConfigError(f"{path}: field 'plugins' must be a non-empty list")
    else:
        plugins = [{k: v for k, v in raw.items() if k not in ("name", "cniVersion")}]
    for i, p in enumerate(plugins):
        if not isinstance(p, dict) or not isinstance(p.get("type"), str):
            raise CniConfigError(f"{path}: plugins[{i}].type must be a string")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise CniConfigError(f"{path}: field 'name' must be a non-empty string")
    return Network(name, str(raw.get("cniVersion", "1.0.0")), plugins, path)


class _DirWatch:
    """inotify on a directory: has anything in it changed since the last look?

    containerd watches the CNI config dir the same way (fsnotify) instead of
    listing it on every call; a pod burst would otherwise list it hundreds
    of times.
    """

    _MASK = 0x2 | 0x8 | 0x40 | 0x80 | 0x100 | 0x200 | 0x4 | 0x400 | 0x800
    # MODIFY CLOSE_WRITE MOVED_FROM MOVED_TO CREATE DELETE ATTRIB DELETE_SELF MOVE_SELF
    _libc = ctypes.CDLL(None, use_errno=True)

    def __init__(self, path: Path) -> None:
        self.fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if self._libc.inotify_add_watch(self.fd, bytes(path), self._MASK) < 0:
            err = ctypes.get_errno()
            os.close(self.fd)
            raise OSError(err, f"inotify_add_watch {path}")

    def changed(self) -> bool:
        try:
            return bool(os.read(self.fd, 65536))
        except BlockingIOError:
            return False

    def close(self) -> None:
        os.close(self.fd)


class CniRunner:
    """Invokes one node's CNI plugins; results cached under cache_dir."""

    def __init__(
        self,
        conf_dir: Path,
        bin_dir: Path,
        cache_dir: Path,
        *,
        host_netns: str | None,
        timeout: float = 60.0,
    ) -> None:
        self.conf_dir = conf_dir
        self.bin_dir = bin_dir
        self.cache_dir = cache_dir
        self.host_netns = host_netns
        self.timeout = timeout
        self._results: dict[tuple[str, str], dict[str, Any]] = {}
        self._net: Network | None = None
        self._watch: _DirWatch | None = None

    def network(self) -> Network:
        """The node's network config, re-read only after the conf dir changed."""
        if self._watch is not None and self._net is not None and not self._watch.changed():
            return self._net
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        try:
            # Watch first, then read: a change in between is seen next time.
            self._watch = _DirWatch(self.conf_dir)
        except OSError:
            self._watch = None  # no watch possible: read every time
        self._net = load_network(self.conf_dir)
        return self._net

    def close(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None

    def _cache_path(self, net: str, container_id: str, ifname: str) -> Path:
        return self.cache_dir / f"{net}-{container_id}-{ifname}"

    async def add(
        self, container_id: str, netns_path: str, ifname: str, args: Mapping[str, str]
    ) -> dict[str, Any]:
        net = self.network()
        prev: dict[str, Any] | None = None
        for plugin in net.plugins:
            conf = self._plugin_conf(net, plugin, prev)
            prev = await self._exec(plugin["type"], "ADD", conf, container_id, netns_path,
                                    ifname, args)  # fmt: skip
        result = prev or {}
        cache = {
            "kind": "cniCacheV1",
            "containerId": container_id,
            "ifName": ifname,
            "networkName": net.name,
            "cniArgs": dict(args),
            "netns": netns_path,
            "result": result,
            "time": time.time(),
        }
        path = self._cache_path(net.name, container_id, ifname)
        await workers.pool().run(lambda: write_atomic(path, json.dumps(cache)))
        self._results[(container_id, ifname)] = result
        return result

    def cached_result(self, container_id: str, ifname: str) -> dict[str, Any] | None:
        """The ADD result for DEL's prevResult: from memory, else from the disk cache."""
        mem = self._results.get((container_id, ifname))
        if mem is not None:
            return mem
        try:
            net = self.network()
            cached: dict[str, Any] = json.loads(
                self._cache_path(net.name, container_id, ifname).read_text()
            )
        except (OSError, ValueError, CniConfigError):
            return None  # e.g. after an agents restart with no cache file left
        result = cached.get("result")
        return result if isinstance(result, dict) else None

    async def drop_cache(self, container_id: str, ifname: str) -> None:
        self._results.pop((container_id, ifname), None)
        try:
            net = self.network()
        except CniConfigError:
            return
        path = self._cache_path(net.name, container_id, ifname)
        await workers.pool().run(lambda: path.unlink(missing_ok=True))

    async def delete(
        self,
        container_id: str,
        netns_path: str,
        ifname: str,
        args: Mapping[str, str],
        prev_result: dict[str, Any] | None,
    ) -> None:
        net = self.network()
        for plugin in reversed(net.plugins):
            conf = self._plugin_conf(net, plugin, prev_result)
            await self._exec(plugin["type"], "DEL", conf, container_id, netns_path, ifname, args)

    @staticmethod
    def _plugin_conf(
        net: Network, plugin: dict[str, Any], prev: dict[str, Any] | None
    ) -> dict[str, Any]:
        conf = dict(plugin)
        conf["name"] = net.name
        conf["cniVersion"] = net.cni_version
        if prev is not None:
            conf["prevResult"] = prev
        return conf

    async def _exec(
        self,
        plugin: str,
        command: str,
        conf: dict[str, Any],
        container_id: str,
        netns_path: str,
        ifname: str,
        args: Mapping[str, str],
    ) -> dict[str, Any]:
        exe = self.bin_dir / plugin
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": netns_path,
            "CNI_IFNAME": ifname,
            "CNI_ARGS": ";".join(f"{k}={v}" for k, v in args.items()),
            "CNI_PATH": str(self.bin_dir),
        }
        argv = [str(exe)]
        # Only the network namespace is the node's (like nsenter --net); `ip
        # netns exec` would also unshare a mount namespace per call, copying
        # every netns mount, which dominated each ADD with hundreds of pods.
        host = netns.path(self.host_netns) if self.host_netns is not None else None
        stdin = json.dumps(conf).encode()
        try:
            proc = await workers.pool("plugins").run(
                lambda: _run_plugin(argv, stdin, env, self.timeout, host)
            )
        except subprocess.TimeoutExpired:
            raise CniError(plugin, command, 11, f"timed out after {self.timeout}s") from None
        except FileNotFoundError:
            raise CniError(plugin, command, 7, f"plugin binary {exe} not found") from None
        except PermissionError as e:
            raise CniError(plugin, command, 7, f"plugin binary {exe}: {e}") from None
        out, err = proc.stdout, proc.stderr
        if proc.returncode != 0:
            try:
                ej = json.loads(out)
                raise CniError(plugin, command, int(ej.get("code", 999)), str(ej.get("msg", "")),
                               str(ej.get("details", "")))  # fmt: skip
            except (ValueError, AttributeError):
                raise CniError(
                    plugin, command, 999,
                    f"exited {proc.returncode}: {(out or err).decode(errors='replace').strip()}",
                ) from None  # fmt: skip
        if command != "ADD":
            return {}
        try:
            result: dict[str, Any] = json.loads(out)
        except ValueError as e:
            raise CniError(plugin, command, 999, f"unparsable result: {e}") from e
        return result
