"""One pod's containers after its sandbox is plugged: start, probe, restart, report.

This is the part of kubelet's pod sync that follows the CNI ADD: init
containers one at a time, each to success, then the app containers
together; restarts per restartPolicy with the crash back-off (spec.py);
probes deciding `ready` and `started` and, for liveness, restarts; and one
status writer that patches the pod's status only when what it would write
differs from what it wrote last (container statuses, phase, conditions
with their transition times). After an agents restart the recorded
processes are adopted and the pod's status is taken as the last written,
so an unchanged pod sees no write at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import secrets
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from sandbox.runtime import logs, probes, process, resolvconf, spec
from services.common.kube import KubeClient, KubeError
from services.common.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

#: kubelet never kills with less grace than this (minimumGracePeriodInSeconds)
MIN_GRACE = 2.0
MY_CONDITIONS = (
    "PodReadyToStartContainers",
    "Initialized",
    "ContainersReady",
    "Ready",
    "PodScheduled",
)
HOST_RESOLV = Path("/etc/resolv.conf")


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Container:
    spec: dict[str, Any]
    init: bool
    restart_count: int = 0
    state: dict[str, Any] = field(default_factory=dict)
    last_state: dict[str, Any] = field(default_factory=dict)
    ready: bool = False
    started: bool = False
    container_id: str = ""
    proc: process.Proc | None = None
    crashes: int = 0
    started_mono: float = 0.0
    env: dict[str, str] = field(default_factory=dict)
    kill_reason: str = ""

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    def running(self) -> bool:
        return "running" in self.state

    def status(self) -> dict[str, Any]:
        image = str(self.spec.get("image", ""))
        st: dict[str, Any] = {
            "name": self.name,
            "image": image,
            "imageID": f"kovn-sandbox://{image}" if self.container_id else "",
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
            "state": self.state,
            "lastState": self.last_state,
        }
        if self.container_id:
            st["containerID"] = f"kovn-sandbox://{self.container_id}"
        return st


@dataclass
class Env:
    """What a pod's runtime needs from its kubelet."""

    kube: KubeClient
    node: str
    host_ip: str
    netns: str  # path
    pod_ips: list[str]
    log_dir: Path
    run_dir: Path
    save: Callable[[dict[str, Any]], Awaitable[None]]  # the containers' part of the record
    event: Callable[[str, str, str], Awaitable[None]]  # (type, reason, message)
    sandbox: str = "default"  # the cgroup parent: one per sandbox, so `down` can sweep it


class PodRuntime:
    def __init__(
        self, pod: dict[str, Any], env: Env, recorded: dict[str, Any] | None = None
    ) -> None:
        """recorded: the containers' record from before an agents restart (None: a new pod)."""
        self.pod = pod
        self.env = env
        md = pod["metadata"]
        self.path = f"/api/v1/namespaces/{md['namespace']}/pods/{md['name']}"
        self.log = log.bind(pod=f"{md['namespace']}/{md['name']}", node=env.node)
        ps = pod["spec"]
        self.policy = str(ps.get("restartPolicy") or "Always")
        self.inits = [Container(c, True) for c in ps.get("initContainers") or []]
        self.apps = [Container(c, False) for c in ps.get("containers") or []]
        self.cgroup_root = process.sandbox_cgroup(env.sandbox)
        self.resolv = env.run_dir / "resolv.conf"
        status = pod.get("status") or {}
        self.start_time = str(status.get("startTime") or now())
        self.transitions: dict[str, tuple[str, str]] = {}
        self.last: dict[str, Any] | None = None
        self.orphans: list[process.Proc] = []
        self._seed(status, recorded)
        self.dirty = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.probe_tasks: dict[str, list[asyncio.Task[None]]] = {}
        self.stopping = False

    # -- adoption ------------------------------------------------------------

    def _seed(self, status: dict[str, Any], recorded: dict[str, Any] | None) -> None:
        """Take over processes and statuses from before an agents restart."""
        for c in self.inits + self.apps:
            c.state = {
                "waiting": {"reason": "PodInitializing" if self.inits else "ContainerCreating"}
            }
        if recorded is None:
            return
        procs: dict[str, process.Proc] = {}
        for name, rec in recorded.items():
            proc = process.adopt(int(rec.get("pid") or 0), rec.get("ticks"), rec.get("cgroup"))
            if proc is not None:
                procs[name] = proc
        lists = (
            (self.inits, status.get("initContainerStatuses")),
            (self.apps, status.get("containerStatuses")),
        )
        for group, lst in lists:
            by_name = {s.get("name"): s for s in lst or []}
            for c in group:
                s = by_name.get(c.name)
                if s is None:
                    continue
                c.restart_count = int(s.get("restartCount") or 0)
                c.last_state = dict(s.get("lastState") or {})
                c.state = dict(s.get("state") or c.state)
                c.ready, c.started = bool(s.get("ready")), bool(s.get("started"))
                c.container_id = str(s.get("containerID", "")).removeprefix("kovn-sandbox://")
                if "running" not in c.state:
                    continue
                proc = procs.get(c.name)
                if proc is not None and (recorded.get(c.name) or {}).get("id") == c.container_id:
                    c.proc = procs.pop(c.name)
                    c.started_mono = asyncio.get_running_loop().time()
                    with contextlib.suppress(spec.ConfigError):
                        c.env = spec.container_env(self.full_pod(), c.spec)
                    continue
                # Died while nobody watched: kubelet's verdict for a lost container.
                started = c.state["running"].get("startedAt")
                c.state = {
                    "terminated": {
                        "exitCode": 137,
                        "reason": "ContainerStatusUnknown",
                        "message": "The container could not be located when the pod was terminated",
                        "startedAt": started,
                        "finishedAt": now(),
                    }
                }
                c.ready = c.started = False
        self.orphans = list(procs.values())  # recorded, but not the containers' current ones
        conds = {c.get("type"): c for c in status.get("conditions") or []}
        for t in MY_CONDITIONS:
            if t in conds:
                cond = conds[t]
                self.transitions[t] = (str(cond.get("status")), str(cond.get("lastTransitionTime")))
        self.last = self._mine(status)

    @staticmethod
    def _mine(status: dict[str, Any]) -> dict[str, Any]:
        keep = (
            "phase",
            "hostIP",
            "hostIPs",
            "podIP",
            "podIPs",
            "startTime",
            "containerStatuses",
            "initContainerStatuses",
        )
        out = {k: status[k] for k in keep if k in status}
        out["conditions"] = [
            c for c in status.get("conditions") or [] if c.get("type") in MY_CONDITIONS
        ]
        return out

    # -- life ----------------------------------------------------------------

    def start(self) -> None:
        self.tasks.append(asyncio.create_task(self._writer(), name="pod-status"))
        self.tasks.append(asyncio.create_task(self._run(), name="pod-run"))
        if self.last is not None:
            self.dirty.set()  # adopted: compare what is there with what it should be
        # A new pod's first write waits for its containers to start: one
        # write (Running, Ready) instead of a Pending one first.

    def update(self, pod: dict[str, Any]) -> None:
        """A newer pod object (readiness gate conditions may have changed)."""
        self.pod = pod
        self.dirty.set()

    def changed(self) -> None:
        self.dirty.set()

    async def _dns_ips(self) -> list[str]:
        try:
            svc = await self.env.kube.get("/api/v1/namespaces/kube-system/services/kube-dns")
        except KubeError as e:
            if e.status != 404:
                self.log.warning("kube-dns Service not read", error=str(e))
            return []
        except (aiohttp.ClientError, OSError) as e:
            self.log.warning("kube-dns Service not read", error=str(e))
            return []
        ip = str(svc.get("spec", {}).get("clusterIP") or "")
        return [ip] if ip and ip != "None" else []

    async def _run(self) -> None:
        host_text = ""
        with contextlib.suppress(OSError):
            host_text = HOST_RESOLV.read_text()
        dns = (
            await self._dns_ips() if resolvconf.effective_policy(self.pod) == "ClusterFirst" else []
        )
        if (
            resolvconf.effective_policy(self.pod) == "ClusterFirst"
            and not dns
            and not resolvconf.cluster_dns_fallback()
        ):
            await self.env.event(
                "Warning",
                "MissingClusterDNS",
                'pod: "' + self.pod["metadata"]["name"] + '". kubelet does not have '
                "ClusterDNS IP configured and cannot create Pod using "
                '"ClusterFirst" policy. Falling back to "Default" policy.',
            )
        text = resolvconf.content(self.pod, dns, host_text)
        self.env.run_dir.mkdir(parents=True, exist_ok=True)
        self.resolv.write_text(text)
        for c in self.inits:
            term = c.state.get("terminated") or {}
            if term.get("exitCode") == 0:
                continue
            if not await self._container_loop(c):
                return  # failed for good (restartPolicy Never): the pod is Failed
        for c in self.apps:
            if c.state.get("waiting", {}).get("reason") == "PodInitializing":
                c.state = {"waiting": {"reason": "ContainerCreating"}}
        self.changed()
        self.tasks.extend(asyncio.create_task(self._app(c)) for c in self.apps)

    async def _app(self, c: Container) -> None:
        await self._container_loop(c)

    async def _container_loop(self, c: Container) -> bool:
        """Run c until it ends for good; True if it succeeded (init containers)."""
        while True:
            if c.proc is None:
                try:
                    await self._start(c)
                except spec.ConfigError as e:
                    c.state = {
                        "waiting": {"reason": "CreateContainerConfigError", "message": str(e)}
                    }
                    self.changed()
                    await self.env.event("Warning", "Failed", f"Error: {e}")
                    return False
                except OSError as e:
                    c.state = {"waiting": {"reason": "RunContainerError", "message": str(e)}}
                    self.changed()
                    await self.env.event("Warning", "Failed", f"Error: {e}")
                    return False
            self._start_probes(c)
            assert c.proc is not None and c.proc.exited is not None
            code = await c.proc.exited
            await self._stop_probes(c)
            proc, c.proc = c.proc, None
            proc.kill_all()  # nothing the container forked outlives it
            await process.remove_cgroup(proc.cgroup)
            started_at = c.state.get("running", {}).get("startedAt", "")
            if code is None:
                term = {
                    "exitCode": 137,
                    "reason": "ContainerStatusUnknown",
                    "message": "The container could not be located when the pod was terminated",
                }
            else:
                term = {"exitCode": code, "reason": "Completed" if code == 0 else "Error"}
            term.update(
                startedAt=started_at,
                finishedAt=now(),
                containerID=f"kovn-sandbox://{c.container_id}",
            )
            c.state = {"terminated": term}
            c.ready = c.started = False
            self.changed()
            if self.stopping:
                return False
            exit_code = 137 if code is None else code
            ok = exit_code == 0
            if not spec.restarts(self.policy, exit_code, c.init):
                return ok
            ran = asyncio.get_running_loop().time() - c.started_mono
            c.crashes = 1 if ran > spec.BACKOFF_RESET else c.crashes + 1
            delay = spec.backoff(c.crashes)
            c.last_state = {"terminated": term}
            if delay > 0:
                md = self.pod["metadata"]
                msg = (
                    f"back-off {delay:g}s restarting failed container={c.name} "
                    f"pod={md['name']}_{md['namespace']}({md['uid']})"
                )
                c.state = {"waiting": {"reason": "CrashLoopBackOff", "message": msg}}
                self.changed()
                await self.env.event(
                    "Warning",
                    "BackOff",
                    "Back-off restarting failed container "
                    f"{c.name} in pod {md['name']}_{md['namespace']}({md['uid']})",
                )
                await asyncio.sleep(delay)
            c.restart_count += 1

    async def _start(self, c: Container) -> None:
        c.env = spec.container_env(self.full_pod(), c.spec)
        argv = spec.argv(c.spec, c.env)
        c.container_id = secrets.token_hex(32)
        c.kill_reason = ""
        md = self.pod["metadata"]
        cg = None
        if self.cgroup_root is not None:
            cg = self.cgroup_root / f"pod{md['uid']}" / c.container_id[:12]
        logf = logs.path(self.env.log_dir, c.name, c.restart_count)
        c.proc = await process.spawn(
            process.Launch(
                argv,
                c.env,
                str(c.spec.get("workingDir") or "/"),
                self.env.netns,
                self.resolv,
                cg,
                logf,
            )
        )
        c.started_mono = asyncio.get_running_loop().time()
        logs.prune(self.env.log_dir, c.name, c.restart_count)
        c.state = {"running": {"startedAt": now()}}
        c.started = "startupProbe" not in c.spec
        c.ready = c.started and "readinessProbe" not in c.spec
        await self.env.save(self.record())
        self.changed()

    def record(self) -> dict[str, Any]:
        return {
            c.name: {
                "pid": c.proc.pid,
                "ticks": c.proc.ticks,
                "id": c.container_id,
                "cgroup": str(c.proc.cgroup) if c.proc.cgroup else None,
            }
            for c in self.inits + self.apps
            if c.proc is not None
        }

    # -- probes --------------------------------------------------------------

    def _target(self, c: Container) -> probes.Target:
        ports = {
            str(p["name"]): int(p["containerPort"])
            for p in c.spec.get("ports") or []
            if p.get("name") and p.get("containerPort")
        }
        proc = c.proc
        assert proc is not None
        wd = str(c.spec.get("workingDir") or "/")
        return probes.Target(
            self.env.netns,
            self.env.pod_ips[0],
            ports,
            lambda argv: process.probe_argv(proc, wd, argv),
            c.env,
        )

    def _start_probes(self, c: Container) -> None:
        if c.init:
            return
        t = self._target(c)
        tasks: list[asyncio.Task[None]] = []
        startup = c.spec.get("startupProbe")

        async def on_ready(ok: bool, msg: str) -> bool:
            if c.ready != ok:
                c.ready = ok
                self.changed()
            if not ok:
                await self.env.event("Warning", "Unhealthy", msg)
            return False

        async def on_live(ok: bool, msg: str) -> bool:
            if ok or c.proc is None:
                return False
            await self.env.event("Warning", "Unhealthy", msg)
            await self.env.event(
                "Normal",
                "Killing",
                f"Container {c.name} failed "
                f"{msg.split(' ', 1)[0].lower()} probe, will be restarted",
            )
            c.kill_reason = msg
            await self._kill(c, self._grace())
            return True  # this container's probing ends; its successor gets new probes

        def later() -> None:
            if "readinessProbe" in c.spec:
                tasks.append(
                    asyncio.create_task(
                        probes.run("Readiness", c.spec["readinessProbe"], t, on_ready, c.ready)
                    )
                )
            elif c.started and not c.ready:
                c.ready = True
                self.changed()
            if "livenessProbe" in c.spec:
                tasks.append(
                    asyncio.create_task(
                        probes.run("Liveness", c.spec["livenessProbe"], t, on_live, True)
                    )
                )

        if startup and not c.started:

            async def on_started(ok: bool, msg: str) -> bool:
                if ok:
                    c.started = True
                    self.changed()
                    later()
                    return True  # the startup probe has done its job
                await on_live(False, msg)
                return False

            tasks.append(asyncio.create_task(probes.run("Startup", startup, t, on_started, False)))
        else:
            later()
        self.probe_tasks[c.name] = tasks

    async def _stop_probes(self, c: Container) -> None:
        tasks = [t for t in self.probe_tasks.pop(c.name, []) if t is not asyncio.current_task()]
        # Cancelled again until done: a cancel that lands as a probe's
        # wait_for completes is lost in 3.11, and the probe would run on.
        while pending := [t for t in tasks if not t.done()]:
            for t in pending:
                t.cancel()
            await asyncio.wait(pending, timeout=0.1)
        await asyncio.gather(*(cancel_and_wait(t) for t in tasks))

    # -- stop ----------------------------------------------------------------

    def _grace(self) -> float:
        md = self.pod["metadata"]
        g = md.get("deletionGracePeriodSeconds")
        if g is None:
            g = self.pod["spec"].get("terminationGracePeriodSeconds", 30)
        return max(float(g), MIN_GRACE)

    async def _kill(self, c: Container, grace: float) -> None:
        proc = c.proc
        if proc is None or proc.exited is None:
            return
        proc.signal(signal.SIGTERM)
        # asyncio.wait, not wait_for: 3.11's wait_for can swallow a cancel
        # that arrives as the process exits, and the caller then never ends.
        done, _ = await asyncio.wait({proc.exited}, timeout=grace)
        if not done:
            proc.kill_all()

    async def stop(self) -> None:
        """SIGTERM every container, SIGKILL after the grace period, remove cgroups."""
        self.stopping = True
        grace = self._grace()
        running = [c for c in self.inits + self.apps if c.proc is not None]
        for c in running:
            await self._stop_probes(c)
        await asyncio.gather(*(self._kill(c, grace) for c in running))
        for c in running:
            if c.proc is not None:
                c.proc.kill_all()
                await process.remove_cgroup(c.proc.cgroup)
        for proc in self.orphans:
            proc.kill_all()
            await process.remove_cgroup(proc.cgroup)
        await asyncio.gather(*(cancel_and_wait(t) for t in self.tasks))
        if self.cgroup_root is not None:
            uid = self.pod["metadata"]["uid"]
            await process.remove_cgroup(self.cgroup_root / f"pod{uid}")
            with contextlib.suppress(OSError):
                self.cgroup_root.rmdir()  # the sandbox's, once its last pod is gone

    async def close(self) -> None:
        """The agents stop: leave the processes running (adopted at the next start)."""
        for c in self.inits + self.apps:
            await self._stop_probes(c)
        await asyncio.gather(*(cancel_and_wait(t) for t in self.tasks))

    # -- status --------------------------------------------------------------

    def full_pod(self) -> dict[str, Any]:
        """The pod with the status fields the downward API reads (podIP, hostIP)."""
        pod = copy.copy(self.pod)
        st = dict(pod.get("status") or {})
        st.update(
            podIP=self.env.pod_ips[0],
            podIPs=[{"ip": i} for i in self.env.pod_ips],
            hostIP=self.env.host_ip,
            hostIPs=[{"ip": self.env.host_ip}],
        )
        pod["status"] = st
        return pod

    def _cond(self, type_: str, ok: bool, reason: str = "", message: str = "") -> dict[str, Any]:
        status = "True" if ok else "False"
        prev = self.transitions.get(type_)
        if prev is None or prev[0] != status:
            prev = (status, now())
            self.transitions[type_] = prev
        c: dict[str, Any] = {
            "type": type_,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": prev[1],
        }
        if not ok and reason:
            c["reason"] = reason
            if message:
                c["message"] = message
        return c

    def body(self) -> dict[str, Any]:
        inits = [c.status() for c in self.inits]
        apps = [c.status() for c in self.apps]
        phase = spec.phase(self.pod, inits, apps)
        done = phase in ("Succeeded", "Failed")
        pending_init = [
            c.name for c in self.inits if (c.state.get("terminated") or {}).get("exitCode") != 0
        ]
        unready = [c.name for c in self.apps if not c.ready]
        containers_ready = not unready and not done
        gates_msg = ""
        conds = {c.get("type"): c for c in (self.pod.get("status") or {}).get("conditions") or []}
        for g in self.pod["spec"].get("readinessGates") or []:
            t = g.get("conditionType")
            if t not in conds:
                gates_msg = f'corresponding condition of pod readiness gate "{t}" does not exist.'
                break
            if conds[t].get("status") != "True":
                gates_msg = (
                    f'the status of pod readiness gate "{t}" is not "True", '
                    f"but {conds[t].get('status')}"
                )
                break
        if done:
            r_reason, r_msg = "PodCompleted", ""
        elif unready:
            r_reason, r_msg = (
                "ContainersNotReady",
                f"containers with unready status: [{' '.join(unready)}]",
            )
        else:
            r_reason, r_msg = "ReadinessGatesNotReady", gates_msg
        ready = containers_ready and not gates_msg
        cond = [
            self._cond("PodReadyToStartContainers", True),
            self._cond(
                "Initialized",
                not pending_init,
                "ContainersNotInitialized",
                f"containers with incomplete status: [{' '.join(pending_init)}]",
            ),
            self._cond("Ready", ready, r_reason, r_msg),
            self._cond(
                "ContainersReady",
                containers_ready,
                "PodCompleted" if done else "ContainersNotReady",
                "" if done else f"containers with unready status: [{' '.join(unready)}]",
            ),
            self._cond("PodScheduled", True),
        ]
        body: dict[str, Any] = {
            "phase": phase,
            "hostIP": self.env.host_ip,
            "hostIPs": [{"ip": self.env.host_ip}],
            "podIP": self.env.pod_ips[0],
            "podIPs": [{"ip": ip} for ip in self.env.pod_ips],
            "startTime": self.start_time,
            "conditions": cond,
            "containerStatuses": apps,
        }
        if inits:
            body["initContainerStatuses"] = inits
        return body

    @staticmethod
    def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
        def prune(v: Any) -> Any:
            # The store may drop what is empty; empty and absent mean the same here.
            if isinstance(v, dict):
                return {k: prune(x) for k, x in v.items() if x not in (None, {}, "", [])}
            if isinstance(v, list):
                return [prune(x) for x in v]
            return v

        def norm(d: dict[str, Any]) -> Any:
            d = dict(d)
            d["conditions"] = sorted(d.get("conditions") or [], key=lambda c: str(c.get("type")))
            return prune(d)

        return bool(norm(a) == norm(b))

    async def _writer(self) -> None:
        backoff = 0.2
        while True:
            await self.dirty.wait()
            self.dirty.clear()
            body = self.body()
            if self.last is not None and self._same(body, self.last):
                continue
            try:
                await self.env.kube.strategic_merge_patch(
                    self.path + "/status", {"status": _patch(body)}
                )
                self.last = body
                backoff = 0.2
            except KubeError as e:
                if e.status == 404:
                    return
                self.log.warning("pod status not written", error=str(e))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                self.dirty.set()
            except (aiohttp.ClientError, OSError) as e:
                self.log.warning("pod status not written", error=str(e))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                self.dirty.set()

    # -- logs and exec -------------------------------------------------------

    def container(self, name: str) -> Container | None:
        for c in self.inits + self.apps:
            if c.name == name:
                return c
        return None


def _patch(body: dict[str, Any]) -> dict[str, Any]:
    """body as a strategic merge patch that leaves nothing of the old values:
    a container's state replaces the old state (running and waiting never
    coexist), a condition without reason or message clears the old ones."""
    out = dict(body)
    for key in ("containerStatuses", "initContainerStatuses"):
        if key in out:
            out[key] = [
                {**st, "state": {"$patch": "replace", **st["state"]},
                 "lastState": {"$patch": "replace", **st["lastState"]}}
                for st in out[key]
            ]  # fmt: skip
    out["conditions"] = [{"reason": None, "message": None, **c} for c in out["conditions"]]
    return out
