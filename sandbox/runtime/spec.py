"""Kubelet's rules about a pod spec, as pure functions: env, restarts, phase.

Separate from the process and status machinery so each rule can be read
next to the kubelet behaviour it copies (and unit-tested without root):
env with fieldRef and $(VAR) expansion, whether a container restarts, the
crash back-off, and the pod phase computed from container states.
"""

from __future__ import annotations

import re
from typing import Any

from sandbox.runtime import images

#: Kubelet's crash back-off is 10 s doubling to 5 min, reset after a
#: container ran 10 min (2 x max) without crashing. The sandbox keeps that
#: shape scaled down by BACKOFF_SCALE so tests see CrashLoopBackOff in seconds.
BACKOFF_SCALE = 0.1
BACKOFF_BASE = 10.0 * BACKOFF_SCALE
BACKOFF_MAX = 300.0 * BACKOFF_SCALE
BACKOFF_RESET = 2 * BACKOFF_MAX

#: Every container sees these unless its env overrides them (an image would
#: normally bring PATH; there is no image).
BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
}

#: Images whose entrypoint is known without pulling them.
IDLE_IMAGES = ("pause",)
IDLE_COMMAND = ["sleep", "infinity"]


class ConfigError(Exception):
    """The container cannot be started as specified (kubelet: CreateContainerConfigError)."""


_FIELD_SIMPLE = {
    "metadata.name": ("metadata", "name"),
    "metadata.namespace": ("metadata", "namespace"),
    "metadata.uid": ("metadata", "uid"),
    "spec.nodeName": ("spec", "nodeName"),
    "spec.serviceAccountName": ("spec", "serviceAccountName"),
    "status.podIP": ("status", "podIP"),
    "status.hostIP": ("status", "hostIP"),
}
_FIELD_MAP = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")


def field_value(pod: dict[str, Any], path: str) -> str:
    """A downward-API fieldRef value; podIP/hostIP come from the status being written."""
    if path in _FIELD_SIMPLE:
        a, b = _FIELD_SIMPLE[path]
        return str(pod.get(a, {}).get(b) or "")
    if path in ("status.podIPs", "status.hostIPs"):
        return ",".join(str(i.get("ip", "")) for i in pod.get("status", {}).get(path[7:], []))
    m = _FIELD_MAP.match(path)
    if m:
        return str(pod.get("metadata", {}).get(m.group(1), {}).get(m.group(2), ""))
    raise ConfigError(f"unsupported fieldRef fieldPath {path!r}")


_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: defined names are replaced, $$ escapes,
    undefined references stay as written."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)

    return _REF.sub(sub, text)


def container_env(pod: dict[str, Any], c: dict[str, Any]) -> dict[str, str]:
    """The process environment of container c, in kubelet's order (later wins)."""
    env = dict(BASE_ENV)
    prefix = images.path_prefix(str(c.get("image", "")))
    if prefix:
        env["PATH"] = f"{prefix}:{env['PATH']}"
    env["HOSTNAME"] = str(pod.get("metadata", {}).get("name", ""))
    if c.get("envFrom"):
        raise ConfigError("envFrom (ConfigMap/Secret) is not supported by the sandbox kubelet")
    for e in c.get("env") or []:
        name = str(e.get("name", ""))
        if "value" in e or not e.get("valueFrom"):
            env[name] = expand(str(e.get("value") or ""), env)
            continue
        src = e["valueFrom"]
        if "fieldRef" in src:
            env[name] = field_value(pod, str(src["fieldRef"].get("fieldPath", "")))
        else:
            kind = next(iter(src), "?")
            raise ConfigError(
                f"env {name}: valueFrom.{kind} is not supported by the sandbox kubelet"
            )
    return env


def argv(c: dict[str, Any], env: dict[str, str]) -> list[str]:
    """command + args, expanded; no command means the image's entrypoint, which
    exists only for the idle images (see README: sandbox kubelet)."""
    command = [expand(str(x), env) for x in c.get("command") or []]
    args = [expand(str(x), env) for x in c.get("args") or []]
    if command:
        return command + args
    base = images.base_name(str(c.get("image", "")))
    if args and base not in IDLE_IMAGES:
        # As for an image without ENTRYPOINT (busybox): the args are the command.
        return args
    # No image to take an entrypoint from: the container idles, as a
    # long-running server image would, so a pod without a command (the
    # demo's, `kubectl run --image=busybox`) stays Running.
    return list(IDLE_COMMAND)


def restarts(policy: str, exit_code: int, init: bool = False) -> bool:
    """Whether kubelet restarts a container that exited with exit_code."""
    if init:
        # Init containers are re-run on failure unless the pod says Never.
        return exit_code != 0 and policy != "Never"
    if policy == "Always":
        return True
    if policy == "OnFailure":
        return exit_code != 0
    return False


def backoff(crashes: int) -> float:
    """Delay before restart number `crashes` (1-based): the first restart is
    immediate, then BASE, 2 x BASE, ... up to MAX, as kubelet's back-off."""
    if crashes <= 1:
        return 0.0
    return float(min(BACKOFF_BASE * 2 ** (crashes - 2), BACKOFF_MAX))


def phase(
    pod: dict[str, Any], init_statuses: list[dict[str, Any]], statuses: list[dict[str, Any]]
) -> str:
    """The pod phase from container statuses (kubelet's getPhase)."""
    spec = pod.get("spec", {})
    policy = str(spec.get("restartPolicy") or "Always")
    n_init = len(spec.get("initContainers") or [])
    init_done = sum(
        1
        for s in init_statuses
        if (s.get("state", {}).get("terminated") or {}).get("exitCode") == 0
    )
    if n_init and init_done < n_init:
        for s in init_statuses:
            t = s.get("state", {}).get("terminated")
            if t and t.get("exitCode") != 0 and policy == "Never":
                return "Failed"
        return "Pending"
    running = waiting = stopped = succeeded = unknown = 0
    for s in statuses:
        st = s.get("state", {})
        if "running" in st:
            running += 1
        elif "terminated" in st:
            stopped += 1
            if st["terminated"].get("exitCode") == 0:
                succeeded += 1
        elif "waiting" in st:
            if "terminated" in s.get("lastState", {}):
                stopped += 1
            else:
                waiting += 1
        else:
            unknown += 1
    if len(statuses) < len(spec.get("containers") or []):
        waiting += len(spec.get("containers") or []) - len(statuses)
    if waiting:
        return "Pending"
    if running and not unknown:
        return "Running"
    if not running and stopped and not unknown:
        if policy == "Always":
            return "Running"
        if policy == "OnFailure":
            return "Succeeded" if stopped == succeeded else "Running"
        return "Succeeded" if stopped == succeeded else "Failed"
    return "Pending"
