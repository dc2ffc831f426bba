"""`python -m sandbox.dns`: the sandbox's cluster DNS (feeder + a dnsmasq per node).

Started by `sandbox.components` like kovn's services (pidfile, ready file,
JSON log under `<state>/kovn/`); SIGTERM stops every node's dnsmasq and
removes its DNAT table before the process exits.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import structlog

from sandbox.dns import feeder
from sandbox.layout import Layout
from services.common.kube import KubeClient, connect
from services.common.logging import configure_logging

log = structlog.get_logger(__name__)

ADDRESS_TIMEOUT = 30.0


def kovn0_address(ns: str) -> str:
    res = subprocess.run(
        ["ip", "-n", ns, "-4", "-o", "addr", "show", "dev", "kovn0"],
        capture_output=True,
        text=True,
    )
    words = res.stdout.split()
    return words[3].split("/")[0] if res.returncode == 0 and len(words) > 3 else ""


async def _addresses(lay: Layout) -> dict[str, str]:
    # The dataplanes have bootstrapped kovn0 before this process starts
    # (components.start waits for it); this only covers a restart racing one.
    deadline = time.monotonic() + ADDRESS_TIMEOUT
    while True:
        found = {n.name: kovn0_address(n.netns) for n in lay.nodes}
        if all(found.values()) or time.monotonic() > deadline:
            missing = [n for n, a in found.items() if not a]
            if missing:
                raise SystemExit(f"no kovn0 address on {missing}: is kovn's dataplane running?")
            return found
        await asyncio.sleep(0.1)


async def amain(args: argparse.Namespace) -> int:
    lay = Layout.load(args.state_dir)
    addresses = await _addresses(lay)
    kube = KubeClient(await connect(lay.kubeconfig))
    dns = feeder.Feeder(
        kube,
        lay,
        addresses,
        zone=args.zone,
        ttl=args.ttl,
        cluster_ip=args.cluster_ip,
        upstreams=tuple(args.upstream),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await dns.start()
        if args.ready_file:
            feeder.write_ready(args.ready_file, dns.describe())
        log.info("cluster dns ready", **dns.describe())
        await stop.wait()
    finally:
        await dns.stop()
        await kube.close()
        if args.ready_file:
            args.ready_file.unlink(missing_ok=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sandbox.dns")
    ap.add_argument("--state-dir", required=True, type=Path)
    ap.add_argument("--ready-file", type=Path, default=None)
    ap.add_argument("--log-format", default="auto", choices=("auto", "json", "console"))
    ap.add_argument("--zone", default="cluster.local")
    ap.add_argument("--ttl", type=int, default=5, help="seconds (CoreDNS's default: 5)")
    ap.add_argument("--cluster-ip", default=feeder.DEFAULT_CLUSTER_IP)
    ap.add_argument(
        "--upstream",
        action="append",
        default=[],
        help="forward names outside the zone here (default: none, they are REFUSED)",
    )
    args = ap.parse_args(argv)
    configure_logging(fmt=args.log_format, level="info")
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
