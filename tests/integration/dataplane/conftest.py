"""Fixtures for dataplane integration tests (the node itself is in harness.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from sandbox.testbed.dataplane import CniResult, Env, node_env

__all__ = ["CniResult", "Env"]


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    with node_env() as e:
        yield e
