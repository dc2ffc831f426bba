"""The manifests build, and every setting they pass exists in the service's config.

A Deployment that sets KOVN_CONTROLLER_NB_REMOTE when the flag is `nb` would
start a controller with its default silently; these tests keep the
manifests and the config dataclasses in step.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.common.config import env_prefix
from services.controller.config import ControllerConfig
from services.dataplane.config import DataplaneConfig
from services.ipam.config import IpamConfig

ROOT = Path(__file__).resolve().parents[3]
CONFIGS: dict[str, type[Any]] = {
    "ipam": IpamConfig,
    "controller": ControllerConfig,
    "dataplane": DataplaneConfig,
}


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is needed to build the kustomization (Debian package kubectl)")
    out = subprocess.run(
        [kubectl, "kustomize", str(ROOT / "manifests")],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def _containers(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for obj in objects:
        if obj["kind"] in ("Deployment", "DaemonSet"):
            for c in obj["spec"]["template"]["spec"]["containers"]:
                found.append((obj["metadata"]["name"], c))
    return found


def test_every_component_is_deployed(objects: list[dict[str, Any]]) -> None:
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert ("Deployment", "kovn-ipam") in kinds
    assert ("Deployment", "kovn-controller") in kinds
    assert ("DaemonSet", "kovn-dataplane") in kinds
    assert ("CustomResourceDefinition", "subnets.kovn.io") in kinds
    assert ("CustomResourceDefinition", "ippools.kovn.io") in kinds


def test_container_settings_name_real_config_fields(objects: list[dict[str, Any]]) -> None:
    checked = 0
    for owner, container in _containers(objects):
        component, verb = container["args"][:2]
        assert verb == "serve", owner
        config = CONFIGS[component]
        fields = {f.name for f in dataclasses.fields(config)}
        prefix = env_prefix(component)
        for env in container.get("env", []):
            name = env["name"]
            if not name.startswith("KOVN_"):
                continue
            assert name.startswith(prefix), f"{owner}: {name} is not a {component} setting"
            key = name[len(prefix) :].lower()
            assert key in fields, f"{owner}: {name} sets no field of {config.__name__}"
            checked += 1
    assert checked >= 10
