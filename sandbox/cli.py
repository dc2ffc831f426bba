"""`kovn sandbox ...`: up, down, status, kubeconfig and exec for a sandbox cluster.

The words after `kovn sandbox` arrive in main(argv). Each command finds its
sandbox by name (state dir /var/lib/kovn/sandbox/<name>) or by --state-dir,
so several sandboxes coexist and `down` works from the state dir alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog

from sandbox import cluster
from sandbox.layout import Layout, LayoutError, check_name, default_state_dir

DEFAULT_NAME = "kovn"


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", default=DEFAULT_NAME, help="sandbox name (default: kovn)")
    p.add_argument(
        "--state-dir", type=Path, default=None, help="default: /var/lib/kovn/sandbox/NAME"
    )


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="kovn sandbox", description="a kovn cluster on this machine")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("up", help="create and start a sandbox")
    _common(p)
    p.add_argument("--nodes", type=int, default=2)
    p.add_argument(
        "--cni",
        choices=("bridge", "kovn"),
        default="kovn",
        help="the pods' CNI plugin: kovn (default; kovn's services run in the sandbox) or "
        "the reference bridge + host-local",
    )
    p.add_argument(
        "--cooldown",
        type=float,
        default=None,
        help="seconds a freed pod address is held back (kovn; default $KOVN_SANDBOX_COOLDOWN or 5)",
    )
    p.add_argument(
        "--demo",
        action="store_true",
        help="apply a demo workload and show what kovn made of it; on a sandbox that is "
        "already up, show it again",
    )
    p = sub.add_parser("down", help="stop a sandbox and remove every trace of it")
    _common(p)
    p.add_argument("--keep-logs", action="store_true", help="keep *.log files in the state dir")
    p = sub.add_parser("status", help="nodes, pods and IPs")
    _common(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = sub.add_parser("kubeconfig", help="print the kubeconfig path")
    _common(p)
    p = sub.add_parser(
        "exec",
        help="run a command in a pod's network namespace (or a node's, the central's, "
        "the external host's)",
    )
    _common(p)
    p.add_argument("pod", metavar="NAMESPACE/POD|NODE|central|external")
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD ...")
    return ap


def _state_dir(args: argparse.Namespace) -> Path:
    check_name(args.name)
    return Path(args.state_dir) if args.state_dir else default_state_dir(args.name)


def main(argv: list[str]) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # `kovn sandbox status | head`: the reader left; not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if not structlog.is_configured():
        # Logs go to stderr so stdout stays the command's answer (tables, JSON, a path).
        from services.common.logging import configure_logging

        configure_logging(level="warning")
    try:
        state_dir = _state_dir(args)
        cmd = args.command
        if cmd == "up":
            return _up(args, state_dir)
        if cmd == "down":
            t0 = time.monotonic()
            found = cluster.down(state_dir, keep_logs=args.keep_logs)
            if found:
                print(f"sandbox {args.name} down in {time.monotonic() - t0:.1f}s")
            else:
                print(f"no sandbox state in {state_dir}: nothing to do")
            return 0
        if cmd == "kubeconfig":
            print(cluster.load(state_dir).kubeconfig)
            return 0
        if cmd == "status":
            return _status(cluster.load(state_dir), args.json)
        if cmd == "exec":
            return _exec(cluster.load(state_dir), args.pod, args.cmd)
    except (LayoutError, cluster.SandboxError) as e:
        print(f"kovn sandbox {args.command}: {e}", file=sys.stderr)
        return 1
    except RuntimeError as e:
        # e.g. components.ComponentError: a kovn service did not come up.
        print(f"kovn sandbox {args.command}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 2


def _up(args: argparse.Namespace, state_dir: Path) -> int:
    if args.demo and args.cni != "kovn":
        print("kovn sandbox up: --demo shows kovn at work; it needs --cni kovn", file=sys.stderr)
        return 2
    if args.cooldown is not None and args.cooldown < 0:
        print(f"kovn sandbox up: invalid --cooldown {args.cooldown}: must not be negative",
              file=sys.stderr)  # fmt: skip
        return 2
    if args.demo and _running_kovn(state_dir):
        # `make sandbox` twice: the cluster is there, show the demo again.
        lay = cluster.load(state_dir)
        print(f"sandbox {lay.name} is already up (state dir {lay.state_dir}); the demo again:")
        return _demo(lay)
    t0 = time.monotonic()
    lay = cluster.up(args.name, state_dir, args.nodes, args.cni, cooldown=args.cooldown)
    took = time.monotonic() - t0
    print(f"sandbox {lay.name} up in {took:.1f}s: {len(lay.nodes)} nodes, cni {lay.cni}")
    print(f"  state dir   {lay.state_dir}")
    print(f"  kubeconfig  {lay.kubeconfig}")
    print(f"  OVN NB      unix:{lay.central_dir / 'ovnnb_db.sock'}  tcp:{lay.central_ip}:6641")
    if lay.cni == "kovn":
        from sandbox import components

        d = components.describe(lay)
        print(f"  ipam        {d['ipam']}  controller {d['controller']}  logs {d['logs']}")
        if d["dns"]:
            servers = ", ".join(s["address"] for s in d["dns"]["nodes"].values())
            print(f"  cluster dns kube-dns {d['dns']['cluster_ip']} -> dnsmasq on kovn0 {servers}")
    print(f"  try: kubectl --kubeconfig {lay.kubeconfig} get nodes -o wide")
    if args.demo:
        return _demo(lay)
    return 0


def _running_kovn(state_dir: Path) -> bool:
    """A kovn sandbox whose API and services all run (what --demo can be shown on)."""
    try:
        lay = cluster.load(state_dir)
    except cluster.SandboxError:
        return False
    if lay.cni != "kovn" or not all(cluster.daemons(lay)["api"].values()):
        return False
    from sandbox import components

    return all(components.running(lay).values())


def _demo(lay: Layout) -> int:
    from sandbox import demo

    t0 = time.monotonic()
    green = demo.run(lay)
    print(f"(demo shown in {time.monotonic() - t0:.1f}s)")
    return 0 if green else 1


async def _api_pods(lay: Layout) -> list[dict[str, Any]]:
    from services.common.kube import KubeClient, connect

    kube = KubeClient(await connect(lay.kubeconfig))
    try:
        listing = await asyncio.wait_for(kube.get("/api/v1/pods"), 5)
        items: list[dict[str, Any]] = listing.get("items", [])
        return items
    finally:
        await kube.close()


def _status(lay: Layout, as_json: bool) -> int:
    daemons = cluster.daemons(lay)
    pods: list[dict[str, Any]] = []
    api_error = ""
    if daemons["api"]["kubeapi"]:
        try:
            for p in asyncio.run(_api_pods(lay)):
                st, sp, md = p.get("status", {}), p.get("spec", {}), p["metadata"]
                pods.append(
                    {
                        "namespace": md["namespace"],
                        "name": md["name"],
                        "node": sp.get("nodeName", ""),
                        "ip": st.get("podIP", ""),
                        "phase": st.get("phase", "Pending"),
                    }
                )
        except Exception as e:  # status must still print what it can
            api_error = f"{type(e).__name__}: {e}"
    else:
        api_error = "kube API server is not running"
    if api_error:
        for r in cluster.pod_records(lay):
            pods.append(
                {
                    "namespace": r.get("namespace", ""),
                    "name": r.get("name", ""),
                    "node": r.get("node", ""),
                    "ip": ",".join(r.get("ips", [])),
                    "phase": "Running?" if r.get("ready") else "Pending?",
                }
            )
    if as_json:
        out: dict[str, Any] = {"name": lay.name, "daemons": daemons, "pods": pods,
                               "api_error": api_error}  # fmt: skip
        if lay.cni == "kovn":
            from sandbox import components

            out["kovn_health"] = components.health(lay)
            out["dns"] = {"info": components.dns_info(lay), "health": components.dns_health(lay)}
        print(json.dumps(out, indent=2))
        return 0
    print(f"sandbox {lay.name}  state {lay.state_dir}  underlay {lay.subnet}  cni {lay.cni}")
    api = daemons["api"]
    print(
        f"central {lay.central_ip} ({_up_count(daemons['central'])})  "
        f"kube-api {'up' if api['kubeapi'] else 'DOWN'}  agents {'up' if api['agents'] else 'DOWN'}"
    )
    if lay.cni == "kovn":
        from sandbox import components

        health = components.health(lay)
        serving = [n for n, h in health.items() if h == "SERVING"]
        print(f"kovn services {len(serving)}/{len(health)} serving (gRPC health): " + ", ".join(
            f"{n} {h}" for n, h in health.items()))  # fmt: skip
        print(_dns_line(lay))
    # With kovn, pods take addresses from Subnets, not a per-node CIDR: show
    # each node's kovn0 join address instead.
    joins: dict[str, str] = {}
    if lay.cni == "kovn":
        from sandbox import components

        joins = {k: v or "-" for k, v in components.node_addresses(lay).items()}
    rows = [("NODE", "NETNS", "UNDERLAY IP", "KOVN0" if joins else "POD CIDR", "DAEMONS")]
    for n in lay.nodes:
        third = joins.get(n.name, "-") if joins else n.pod_cidr
        rows.append((n.name, n.netns, n.underlay_ip, third, _up_count(daemons[n.name])))
    _table(rows)
    print()
    prow = [("NAMESPACE", "POD", "NODE", "IP", "PHASE")]
    for p in sorted(pods, key=lambda p: (p["namespace"], p["name"])):
        prow.append((p["namespace"], p["name"], p["node"], p["ip"], p["phase"]))
    _table(prow)
    if api_error:
        print(f"(pods from the kubelet records: {api_error})")
    return 0


def _dns_line(lay: Layout) -> str:
    """Cluster DNS: the kube-dns ClusterIP and each node's server (address, answering?)."""
    from sandbox import components

    info = components.dns_info(lay)
    if info is None:
        return "cluster dns DOWN"
    health = components.dns_health(lay)
    nodes = info.get("nodes") or {}
    return f"cluster dns (dnsmasq) kube-dns {info.get('cluster_ip')}: " + ", ".join(
        f"{n} {s['address']}:{s['port']} {health.get(n, '?')}" for n, s in nodes.items()
    )


def _up_count(d: dict[str, int | None]) -> str:
    return f"{sum(1 for v in d.values() if v)}/{len(d)} up"


def _table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def exec_target(lay: Layout, target: str) -> tuple[str, dict[str, str]]:
    """(netns, extra env) for an exec target; raises SandboxError naming it.

    A node target gets that node's OVS/OVN environment, so `ovs-vsctl show`
    or `ovn-appctl` there talk to the node's own daemons; `central` gets the
    NB/SB defaults, so plain `ovn-nbctl show` works.
    """
    ns, sep, name = target.partition("/")
    if sep:
        if not ns or not name:
            raise cluster.SandboxError(f"pod {target!r} must be NAMESPACE/POD")
        recs = [
            r
            for r in cluster.pod_records(lay)
            if r.get("namespace") == ns and r.get("name") == name and r.get("netns")
        ]
        if not recs:
            raise cluster.SandboxError(f"pod {target} has no network namespace on any node")
        return str(recs[-1]["netns"]), {}
    for n in lay.nodes:
        if target == n.name:
            return n.netns, cluster.node_of(lay, n).env
    if target == "central":
        central = cluster.central_of(lay)
        env = {**central.env, "OVN_NB_DB": central.nb_remote, "OVN_SB_DB": central.sb_remote}
        return lay.central_netns, env
    if target == "external":
        return lay.external_netns, {}
    nodes = ", ".join(n.name for n in lay.nodes)
    raise cluster.SandboxError(
        f"unknown exec target {target!r}: NAMESPACE/POD, a node ({nodes}), central or external"
    )


def _exec(lay: Layout, target: str, cmd: list[str]) -> int:
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        print("kovn sandbox exec: no command given (TARGET -- CMD ...)", file=sys.stderr)
        return 2
    netns_name, env = exec_target(lay, target)
    os.execvpe("ip", ["ip", "netns", "exec", netns_name, *cmd], {**os.environ, **env})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
