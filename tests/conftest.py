"""Session-wide guard: the suite must leave the machine as it found it.

Every test cleans up its network namespaces, links and daemons; this hook
makes that checkable. It records what exists when the session starts and,
at the end, names any new namespaces, root-namespace links or
OVS/OVN/etcd/kovn processes left behind. Under CI (CI=true, where nothing
else runs on the machine) a leak fails the run; on a developer's machine,
where other work may be starting namespaces at the same time, it only warns.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_DAEMONS = ("ovsdb-server", "ovs-vswitchd", "ovn-northd", "ovn-controller", "etcd")


def _netns() -> set[str]:
    run = Path("/run/netns")
    return {p.name for p in run.iterdir()} if run.is_dir() else set()


def _links() -> set[str]:
    return {p.name for p in Path("/sys/class/net").iterdir()}


def _processes() -> set[tuple[int, str]]:
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if comm in _DAEMONS or ("kovn" in cmdline and "pytest" not in cmdline):
            found.add((int(entry.name), comm))
    return found


_BEFORE: dict[str, set[object]] = {}


def pytest_sessionstart(session: pytest.Session) -> None:
    _BEFORE["netns"] = set(_netns())
    _BEFORE["links"] = set(_links())
    _BEFORE["procs"] = {pid for pid, _ in _processes()}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _BEFORE or os.environ.get("KOVN_SKIP_LEAK_CHECK"):
        return
    leaks = []
    netns = _netns() - _BEFORE["netns"]
    if netns:
        leaks.append(f"network namespaces: {sorted(netns)}")
    links = _links() - _BEFORE["links"]
    if links:
        leaks.append(f"links in the root namespace: {sorted(links)}")
    procs = {(pid, comm) for pid, comm in _processes() if pid not in _BEFORE["procs"]}
    procs = {(pid, comm) for pid, comm in procs if pid != os.getpid()}
    if procs:
        leaks.append(f"processes: {sorted(procs)}")
    if leaks:
        message = "tests left things behind:\n  " + "\n  ".join(leaks)
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            tr.write_line(message, red=True)
        else:
            print(message)
        if os.environ.get("CI"):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
