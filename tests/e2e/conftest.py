"""Sandbox fixtures for end-to-end tests.

`sandbox` is one session-wide two-node cluster (OVN central, netns nodes
with OVS/OVN, embedded Kubernetes API, kubelets, scheduler), torn down with
`down` at the end of the session even when tests fail. Tests sharing it use
their own object names and clean up what they create. `make_sandbox` builds
extra, private sandboxes (taken down after the test) for tests about the
sandbox's own life cycle.

KOVN_E2E_CNI=kovn selects the kovn CNI instead of the reference bridge.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox import cluster
from sandbox.handle import SandboxHandle

SESSION_NODES = 2


def sandbox_name() -> str:
    """Test sandboxes are named sbxt<hex> so parallel runs never collide."""
    return f"sbxt{secrets.token_hex(3)}"


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHandle]:
    state_dir = tmp_path_factory.mktemp("sandbox") / "state"
    cni = os.environ.get("KOVN_E2E_CNI", "bridge")
    try:
        # With cni "kovn", up also starts kovn's services (components.py).
        lay = cluster.up(sandbox_name(), state_dir, SESSION_NODES, cni)
        yield SandboxHandle(lay)
    finally:
        cluster.down(state_dir, keep_logs=True)


MakeSandbox = Callable[..., SandboxHandle]


@pytest.fixture
def make_sandbox(tmp_path: Path) -> Iterator[MakeSandbox]:
    made: list[Path] = []

    def make(nodes: int = 1, *, kube: bool = True, cni: str = "bridge") -> SandboxHandle:
        state_dir = tmp_path / f"sbx{len(made)}"
        made.append(state_dir)
        return SandboxHandle(cluster.up(sandbox_name(), state_dir, nodes, cni, kube=kube))

    try:
        yield make
    finally:
        for d in made:
            cluster.down(d, keep_logs=True)
