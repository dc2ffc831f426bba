"""`python -m sandbox.kubeapi`: run the embedded API server until SIGTERM.

Writes DIR/kubeconfig, and once serving, the ready file as JSON
{"url": ..., "kubeconfig": ...} so a supervisor can wait on it.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import signal
import sys
from pathlib import Path

from .server import KubeApiServer


def _listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host, int(port)


def _cidr(value: str) -> str:
    try:
        net = ipaddress.ip_network(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a network: {value!r}") from None
    if net.num_addresses < 16:
        raise argparse.ArgumentTypeError(f"{value!r} is too small (fewer than 16 addresses)")
    return str(net)


async def _run(args: argparse.Namespace) -> None:
    host, port = args.listen
    srv = KubeApiServer(
        Path(args.state_dir),
        host,
        port,
        history_size=args.history_size,
        bookmark_interval=args.bookmark_interval,
        tls=args.tls,
        service_cidr=args.service_cidr,
        event_ttl=args.event_ttl,
    )
    await srv.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.ready_file:
        ready = Path(args.ready_file)
        tmp = ready.with_name(ready.name + ".tmp")
        tmp.write_text(json.dumps({"url": srv.url, "kubeconfig": str(srv.kubeconfig_path)}))
        tmp.replace(ready)
    await stop.wait()
    await srv.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sandbox.kubeapi", description=__doc__)
    p.add_argument(
        "--state-dir", required=True, help="directory for the SQLite store and kubeconfig"
    )
    p.add_argument(
        "--listen", type=_listen, default=("127.0.0.1", 0), help="HOST:PORT (port 0: any free port)"
    )
    p.add_argument("--ready-file", help="write {url, kubeconfig} JSON here once serving")
    p.add_argument(
        "--history-size",
        type=int,
        default=50_000,
        help="watch events kept for resumption; older versions get 410 Gone",
    )
    p.add_argument(
        "--bookmark-interval",
        type=float,
        default=30.0,
        help="seconds between BOOKMARK events on watches that allow them",
    )
    p.add_argument(
        "--service-cidr",
        default="10.96.0.0/16",
        type=_cidr,
        help="range Service cluster IPs are allocated from",
    )
    p.add_argument(
        "--event-ttl",
        type=float,
        default=3600.0,
        help="seconds an Event lives after its last activity (the real --event-ttl)",
    )
    p.add_argument(
        "--tls",
        action="store_true",
        help="serve HTTPS with a private CA kept in DIR/tls (the kubeconfig trusts it)",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = p.parse_args(argv)
    try:
        from services.common.logging import configure_logging

        configure_logging(level=args.log_level)
    except ImportError:
        pass
    asyncio.run(_run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
