"""One node's dnsmasq: started, re-configured without dropping a query, stopped.

dnsmasq re-reads its `--hostsdir` files on its own (inotify) the moment one
is replaced, so A/AAAA/PTR changes need nothing from here. SRV and CNAME
records are configuration lines, which dnsmasq reads only at start (SIGHUP
re-reads hosts files and resolv.conf, never the configuration). A change to
them is applied blue/green: a new dnsmasq with the new configuration starts
on the other of two private ports (dnsmasq's launcher returns only once the
daemon has bound its sockets and written its pidfile, so no polling), one
nft transaction in the node's namespace switches the DNAT `kovn0:53 ->
kovn0:<port>` to it, the old port's UDP conntrack entries are dropped (a
client that reuses its source port would otherwise stay pinned to the old
process), and the old process is stopped. Queries are served by one
process or the other throughout.

Every file is under `<state>/dns/<node>/`; each dnsmasq's command line names
its configuration file there, so the sandbox's `down` finds and stops a
leftover even after the feeder died.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path

import structlog

from sandbox import daemon
from sandbox.dns.records import SCHEMA_VERSION
from sandbox.layout import write_atomic

log = structlog.get_logger(__name__)

DNS_PORT = 53
#: The two private ports a node's dnsmasq generations alternate between.
PORTS = (5301, 5302)
NFT_TABLE = "kovn_sandbox_dns"
#: How long the old generation keeps serving what reached it before the switch.
DRAIN_SECONDS = 0.1


class DnsmasqError(RuntimeError):
    """dnsmasq refused to start; the message has its complaint."""


@dataclass
class Settings:
    zone: str
    ttl: int
    hosts_dir: Path
    upstreams: tuple[str, ...] = ()


def static_config(st: Settings, address: str, port: int, pidfile: Path, logfile: Path) -> list[str]:
    """Everything but the records: where to listen, what is local, what is refused."""
    lines = [
        "no-resolv",  # no upstream but the ones named here
        "no-hosts",
        f"hostsdir={st.hosts_dir}",
        # Answer the cluster zone from local data only: unknown names are
        # NXDOMAIN, never forwarded.
        f"local=/{st.zone}/",
        "domain-needed",
        "bogus-priv",  # unknown private reverse names: NXDOMAIN, not forwarded
        f"local-ttl={st.ttl}",
        f"txt-record=dns-version.{st.zone},{SCHEMA_VERSION}",
        "bind-interfaces",
        f"listen-address={address}",
        f"port={port}",
        "user=root",
        f"pid-file={pidfile}",
        f"log-facility={logfile}",
    ]
    # With no upstream, other names get a clean REFUSED (there is no internet here).
    lines += [f"server={u}" for u in st.upstreams]
    return lines


def nft_rules(address: str, port: int) -> str:
    """DNAT kovn0:53 (from pods, and from the node itself) to the serving generation."""
    rule = (
        f"ip daddr {address} meta l4proto {{ tcp, udp }} th dport {DNS_PORT} "
        f"dnat to {address}:{port}"
    )
    return (
        f"table ip {NFT_TABLE}\n"
        f"flush table ip {NFT_TABLE}\n"
        f"table ip {NFT_TABLE} {{\n"
        f"  chain prerouting {{\n    type nat hook prerouting priority dstnat;\n    {rule}\n  }}\n"
        f"  chain output {{\n    type nat hook output priority -100;\n    {rule}\n  }}\n"
        "}\n"
    )


async def _run(argv: list[str], stdin: str | None = None) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate(stdin.encode() if stdin is not None else None)
    return proc.returncode or 0, out.decode(errors="replace").strip()


class NodeDns:
    """The dnsmasq generations of one node, listening on `address` in netns `ns`."""

    def __init__(self, node: str, ns: str, address: str, run_dir: Path, st: Settings) -> None:
        self.node = node
        self.ns = ns
        self.address = address
        self.dir = run_dir
        self.st = st
        self.port: int | None = None  # the generation the DNAT points at
        self.records: list[str] | None = None  # its SRV/CNAME lines
        self.log = log.bind(node=node)

    def conf_file(self, port: int) -> Path:
        return self.dir / f"dnsmasq-{port}.conf"

    def pidfile(self, port: int) -> Path:
        return self.dir / f"dnsmasq-{port}.pid"

    def logfile(self) -> Path:
        return self.dir / "dnsmasq.log"

    def pid(self, port: int) -> int | None:
        return daemon.read_pid(self.pidfile(port), "dnsmasq", marker=str(self.conf_file(port)))

    async def _exec(self, argv: list[str], stdin: str | None = None) -> tuple[int, str]:
        return await _run(["ip", "netns", "exec", self.ns, *argv], stdin)

    async def _stop_port(self, port: int) -> None:
        await asyncio.to_thread(
            daemon.stop, self.pidfile(port), "dnsmasq", 5.0, marker=str(self.conf_file(port))
        )

    async def _start_port(self, port: int, records: list[str]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        pidfile = self.pidfile(port)
        lines = static_config(self.st, self.address, port, pidfile, self.logfile())
        write_atomic(self.conf_file(port), "\n".join([*lines, *records]) + "\n")
        pidfile.unlink(missing_ok=True)
        # Daemonising, dnsmasq's launcher exits once the daemon serves (or
        # with the reason it cannot); adopt the daemon so stop() reaps it.
        with daemon.adopting_orphans():
            rc, out = await self._exec(["dnsmasq", f"--conf-file={self.conf_file(port)}"])
        if rc != 0 or self.pid(port) is None:
            raise DnsmasqError(f"dnsmasq on {self.node} port {port} did not start (rc {rc}): {out}")

    async def _point_at(self, port: int) -> None:
        rc, out = await self._exec(["nft", "-f", "-"], nft_rules(self.address, port))
        if rc != 0:
            raise DnsmasqError(f"nft on {self.node}: {out}")

    async def start(self, records: list[str]) -> None:
        """Stop whatever an earlier feeder left, then serve `records`."""
        for port in PORTS:
            await self._stop_port(port)
        await self._start_port(PORTS[0], records)
        await self._point_at(PORTS[0])
        self.port, self.records = PORTS[0], list(records)
        self.log.info("dnsmasq serving", address=self.address, port=self.port)

    async def apply(self, records: list[str]) -> bool:
        """Serve `records` from a new generation; False (old one kept) if it fails."""
        if records == self.records:
            return True
        old = self.port
        new = PORTS[1] if old == PORTS[0] else PORTS[0]
        try:
            await self._stop_port(new)  # a leftover of a failed attempt
            await self._start_port(new, records)
            await self._point_at(new)
        except DnsmasqError as e:
            self.log.error("new dnsmasq configuration not applied", error=str(e))
            with contextlib.suppress(DnsmasqError):
                await self._stop_port(new)
            return False
        self.port, self.records = new, list(records)
        if old is not None:
            await self._exec(["conntrack", "-D", "-p", "udp", "--reply-port-src", str(old)])
            await asyncio.sleep(DRAIN_SECONDS)
            await self._stop_port(old)
        self.log.info("dnsmasq reconfigured", port=new, records=len(records))
        return True

    async def stop(self) -> None:
        with contextlib.suppress(OSError):
            await self._exec(["nft", "delete", "table", "ip", NFT_TABLE])
        for port in PORTS:
            await self._stop_port(port)
        self.port = None

    def serving(self) -> bool:
        return self.port is not None and self.pid(self.port) is not None
