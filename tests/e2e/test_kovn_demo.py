"""`make sandbox` (= `kovn sandbox up --nodes 2 --demo`) as a user runs it.

The demo must come up all green (every pod and node answers every pod, and
every pod gets an answer from the web Service by name: cluster DNS, the
ClusterIP, an OVN load balancer, an httpd process in a web pod), show the
fixed IP/MAC pod, the namespace-bound subnet and the web Deployment with
its three ready endpoints, print the next
commands, and be safe to run again: the second run finds the sandbox up and
prints the tables again. `status` shows each kovn service's gRPC health.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sandbox import cli, cluster, demo
from sandbox.layout import Layout
from tests.e2e.kovn_env import e2e_name

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_demo_is_green_and_safe_to_run_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sd = tmp_path / "demo"
    args = ["--name", e2e_name(), "--state-dir", str(sd)]
    try:
        t0 = time.monotonic()
        assert cli.main(["up", "--nodes", "2", "--demo", *args]) == 0
        took = time.monotonic() - t0
        first = capsys.readouterr().out
        assert "35/35 checks answered (30 pings, 5 HTTP) - all green" in first, first
        web = next(line for line in first.splitlines() if line.startswith(f"demo-a/{demo.WEB} "))
        assert "3/3 ready" in web and len(web.split()[-1].split(",")) == 3, web
        assert f"{demo.FIXED_IP} " in first and demo.FIXED_MAC in first
        assert demo.SUBNET_CIDR in first and "demo-b/db-1" in first
        assert "grpcurl" in first and "kubectl --kubeconfig" in first
        assert took < 60, f"demo took {took:.1f}s"
        # Every demo-b pod draws from the Subnet bound to its namespace, even
        # though the Subnet and the pods were applied in one go.
        views = {v.ref: v for v in demo.pods(Layout.load(sd))}
        for ref, view in views.items():
            want = demo.SUBNET if ref.startswith("demo-b/") else "ovn-default"
            assert view.subnet == want, f"{ref} is in {view.subnet}, expected {want}"
        assert views["demo-a/fixed"].ip == demo.FIXED_IP
        # The subnet table counts them already (usage follows allocations).
        in_b = sum(1 for ref in views if ref.startswith("demo-b/"))
        row = next(line for line in first.splitlines() if line.startswith(demo.SUBNET + " "))
        assert f"{in_b} used" in row, row

        assert cli.main(["up", "--nodes", "2", "--demo", *args]) == 0
        second = capsys.readouterr().out
        assert "already up" in second
        assert "35/35 checks answered (30 pings, 5 HTTP) - all green" in second, second

        assert cli.main(["status", *args]) == 0
        status = capsys.readouterr().out
        for component in ("ipam", "controller", "dataplane-"):
            assert component in status
        assert "SERVING" in status and "NOT_SERVING" not in status
    finally:
        cluster.down(sd, keep_logs=True)
