"""Where a burst's CPU goes: CPU seconds per component over an interval.

Pod-ready latency in a burst is bounded by the CPU the whole stack spends
per pod: with every pod created at once, the last one is ready roughly when
the machine has done all the work. Reporting that work by component (from
/proc, before and after) says which hop a latency figure is made of, and
makes a change to any one hop visible in the next report.

kovn-cni processes live a few milliseconds each; their CPU shows up in the
parent that reaps them (the sandbox's node agents) as children's time.
Kernel threads (netns and veth set-up and teardown, RCU) are machine-wide,
so that line includes whatever else the machine did meanwhile.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")

# (marker in the command line, component); the first match wins.
COMPONENTS: tuple[tuple[str, str], ...] = (
    ("services.dataplane.main", "kovn dataplane"),
    ("services.controller.main", "kovn controller"),
    ("services.ipam.main", "kovn ipam"),
    ("ovs-vswitchd", "ovs-vswitchd"),
    ("ovn-controller", "ovn-controller"),
    ("ovn-northd", "ovn-northd"),
    ("ovsdb-server", "ovsdb-server (NB, SB, node DBs)"),
    ("sandbox.agents", "sandbox kubelets + scheduler"),
    ("sandbox.kubeapi", "sandbox API server"),
)
SHIMS = "kovn-cni processes (reaped by the node agents)"
KERNEL = "kernel threads (machine-wide)"


@dataclass(frozen=True)
class Sample:
    """CPU seconds per (pid, component) at one moment, and the machine's busy time."""

    per_process: dict[tuple[int, str], float]
    busy: float


def _component(cmdline: str, marker: str) -> str | None:
    if not cmdline:
        return KERNEL
    if marker not in cmdline:
        return None
    for needle, name in COMPONENTS:
        if needle in cmdline:
            return name
    return None


def processes(file: str) -> Iterator[tuple[int, str, str]]:
    """(pid, command line, text of /proc/<pid>/<file>) of every live process."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            text = (entry / file).read_text()
        except OSError:
            continue  # gone meanwhile
        yield int(entry.name), cmdline, text


def sample(marker: str) -> Sample:
    """CPU so far of the processes whose command line holds marker (a state dir)."""
    out: dict[tuple[int, str], float] = {}
    for pid, cmdline, stat in processes("stat"):
        name = _component(cmdline, marker)
        if name is None:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
        out[(pid, name)] = (utime + stime) / _TICK
        if name == "sandbox kubelets + scheduler":
            out[(pid, SHIMS)] = (cutime + cstime) / _TICK
    cpu = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = cpu[3] + cpu[4]  # idle + iowait
    return Sample(out, (sum(cpu) - idle) / _TICK)


def spent(before: Sample, after: Sample) -> tuple[dict[str, float], float]:
    """(CPU seconds per component, machine busy seconds) between two samples.

    A process that started in between counts from zero; one that exited
    is missing from `after` and not counted (the components here live for
    the whole interval; the shims are counted through their parent).
    """
    by: dict[str, float] = collections.defaultdict(float)
    for key, value in after.per_process.items():
        by[key[1]] += value - before.per_process.get(key, 0.0)
    return dict(by), after.busy - before.busy
