"""OVN central: Northbound and Southbound ovsdb-servers plus ovn-northd.

The sandbox, the controller's integration tests and the dataplane's tests all
need a real OVN control plane. This starts one per run_dir, listening on
unix sockets there (and on TCP when a listen IP is given, the way nodes on
the underlay reach it), and stops it from its pidfiles alone.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from sandbox import daemon

NB_SCHEMA = Path("/usr/share/ovn/ovn-nb.ovsschema")
SB_SCHEMA = Path("/usr/share/ovn/ovn-sb.ovsschema")

_LISTENING = re.compile(r": listening on port (\d+)")


class OvnCentral:
    """NB + SB databases and northd; synchronous start/stop."""

    def __init__(
        self,
        run_dir: Path,
        *,
        netns: str | None = None,
        listen_ip: str | None = None,
        nb_port: int = 6641,
        sb_port: int = 6642,
    ) -> None:
        """nb_port/sb_port 0 picks free ports (read back from the logs after start)."""
        self.run_dir = Path(run_dir)
        self.netns = netns
        self.listen_ip = listen_ip
        self._nb_port = nb_port
        self._sb_port = sb_port
        self.env = daemon.private_env(self.run_dir)
        self.nb_remote = f"unix:{self.run_dir / 'ovnnb_db.sock'}"
        self.sb_remote = f"unix:{self.run_dir / 'ovnsb_db.sock'}"
        # Known up front for fixed ports (nodes can be configured before
        # start); for port 0 they are filled in by start().
        self.nb_tcp: str | None = self._tcp(nb_port) if nb_port else None
        self.sb_tcp: str | None = self._tcp(sb_port) if sb_port else None

    def _tcp(self, port: int) -> str | None:
        if self.listen_ip is None:
            return None
        host = f"[{self.listen_ip}]" if ":" in self.listen_ip else self.listen_ip
        return f"tcp:{host}:{port}"

    def start(self) -> None:
        """Fresh NB/SB databases, both servers and northd; returns when northd works."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.stop()
        try:
            self.nb_tcp = self._start_db("ovnnb_db", NB_SCHEMA, self.nb_remote, self._nb_port)
            self.sb_tcp = self._start_db("ovnsb_db", SB_SCHEMA, self.sb_remote, self._sb_port)
            daemon.start(
                "ovn-northd",
                [f"--ovnnb-db={self.nb_remote}", f"--ovnsb-db={self.sb_remote}"],
                run_dir=self.run_dir,
                name="ovn-northd",
                netns_name=self.netns,
            )
            self.nbctl("init")
            # A barrier: returns once northd has read NB and written SB.
            self.nbctl("--wait=sb", "sync")
        except BaseException:
            self.stop()
            raise

    def _start_db(self, name: str, schema: Path, unix_remote: str, port: int) -> str | None:
        db = self.run_dir / f"{name}.db"
        db.unlink(missing_ok=True)
        daemon.tool(["ovsdb-tool", "create", str(db), str(schema)])
        args = [str(db), f"--remote=p{unix_remote}"]
        if self.listen_ip is not None:
            args.append(f"--remote=ptcp:{port}:{self.listen_ip}")
        daemon.start("ovsdb-server", args, run_dir=self.run_dir, name=name, netns_name=self.netns)
        if self.listen_ip is None:
            return None
        if port == 0:
            port = self._bound_port(self.run_dir / f"{name}.log")
        return self._tcp(port)

    @staticmethod
    def _bound_port(log_file: Path, timeout: float = 5.0) -> int:
        # ovsdb-server logs the port it bound for ptcp:0 just before detaching.
        deadline = time.monotonic() + timeout
        while True:
            m = _LISTENING.search(log_file.read_text(errors="replace"))
            if m:
                return int(m.group(1))
            if time.monotonic() > deadline:
                raise daemon.DaemonError(f"no listening port in {log_file}")
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop northd, SB and NB; idempotent."""
        daemon.stop(self.run_dir / "ovn-northd.pid", "ovn-northd")
        for name in ("ovnsb_db", "ovnnb_db"):
            daemon.stop(self.run_dir / f"{name}.pid", "ovsdb-server")

    def running(self) -> dict[str, int | None]:
        return {
            "ovnnb_db": daemon.read_pid(self.run_dir / "ovnnb_db.pid", "ovsdb-server"),
            "ovnsb_db": daemon.read_pid(self.run_dir / "ovnsb_db.pid", "ovsdb-server"),
            "ovn-northd": daemon.read_pid(self.run_dir / "ovn-northd.pid", "ovn-northd"),
        }

    def nbctl(self, *args: str) -> str:
        """ovn-nbctl against this NB; returns stdout stripped."""
        return daemon.tool(["ovn-nbctl", f"--db={self.nb_remote}", "--timeout=30", *args], self.env)

    def sbctl(self, *args: str) -> str:
        """ovn-sbctl against this SB; returns stdout stripped."""
        return daemon.tool(["ovn-sbctl", f"--db={self.sb_remote}", "--timeout=30", *args], self.env)
