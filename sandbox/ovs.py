"""One Open vSwitch node: ovsdb-server, ovs-vswitchd and ovn-controller in a netns.

Sandbox nodes, and the dataplane and controller tests, all need "a node":
a private OVSDB created from the vswitch schema, a userspace (netdev)
ovs-vswitchd whose tap devices appear in the node's namespace, and
optionally an ovn-controller registered as a chassis. Each instance keeps
its database, pidfiles, logs and control sockets in its own run_dir, so any
number of nodes coexist and each stops from its pidfiles alone.
"""

from __future__ import annotations

from pathlib import Path

from sandbox import daemon, netns

VSWITCH_SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")


class OvsNode:
    """The OVS (and OVN chassis) daemons of one node, synchronous start/stop."""

    def __init__(
        self,
        name: str,
        run_dir: Path,
        *,
        netns: str,
        ovn_remote: str | None = None,
        encap_ip: str | None = None,
        configure_ovn: bool = True,
    ) -> None:
        self.name = name
        self.run_dir = Path(run_dir)
        self.netns = netns
        self.ovn_remote = ovn_remote
        self.encap_ip = encap_ip
        self.configure_ovn = configure_ovn
        self.db_file = self.run_dir / "conf.db"
        self.db_remote = f"unix:{self.run_dir / 'db.sock'}"
        self.env: dict[str, str] = daemon.private_env(self.run_dir)

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        """Start from a fresh database; returns when every daemon is ready."""
        self.start_ovs()
        if self.ovn_remote is not None:
            try:
                self.start_ovn()
            except BaseException:
                self.stop()
                raise

    def start_ovs(self) -> None:
        """ovsdb-server (fresh db) and ovs-vswitchd only.

        Callers that must build bridges (e.g. the underlay on br-phy) before
        ovn-controller tries to reach OVN call this, then start_ovn().
        """
        if not netns.exists(self.netns):
            raise netns.NetnsError(f"node {self.name}: netns {self.netns!r} does not exist")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.stop()
        self.db_file.unlink(missing_ok=True)
        daemon.tool(["ovsdb-tool", "create", str(self.db_file), str(VSWITCH_SCHEMA)])
        try:
            daemon.start(
                "ovsdb-server",
                [
                    str(self.db_file),
                    f"--remote=p{self.db_remote}",
                    "--remote=db:Open_vSwitch,Open_vSwitch,manager_options",
                ],
                run_dir=self.run_dir,
                name="ovsdb-server",
                netns_name=self.netns,
            )
            self.vsctl("--no-wait", "init")
            daemon.start(
                "ovs-vswitchd",
                [self.db_remote],
                run_dir=self.run_dir,
                name="ovs-vswitchd",
                netns_name=self.netns,
            )
        except BaseException:
            self.stop()
            raise

    def start_ovn(self, wait_br_int: bool = True) -> None:
        """ovn-controller (after start_ovs), with the chassis settings when configure_ovn.

        With wait_br_int, returns once ovn-controller has created br-int, so
        callers can plug ports right away.
        """
        if self.ovn_remote is None:
            raise ValueError(f"node {self.name}: ovn_remote is not set")
        if self.configure_ovn:
            self.vsctl("--no-wait", "set", "Open_vSwitch", ".", *self._ovn_ids())
        daemon.start(
            "ovn-controller",
            [self.db_remote],
            run_dir=self.run_dir,
            name="ovn-controller",
            netns_name=self.netns,
            # 23.03 rejects --unixctl; it uses $OVN_RUNDIR/ovn-controller.<pid>.ctl.
            unixctl=False,
        )
        if wait_br_int:
            try:
                self.vsctl("--timeout=20", "wait-until", "Bridge", "br-int")
            except daemon.ToolError as e:
                tail = daemon.log_tail(self.log_file("ovn-controller"))
                raise daemon.DaemonError(
                    f"node {self.name}: ovn-controller made no br-int: {e}\n{tail}"
                ) from e

    def _ovn_ids(self) -> list[str]:
        ids = {
            "system-id": self.name,
            "hostname": self.name,
            "ovn-remote": self.ovn_remote or "",
            "ovn-encap-type": "geneve",
            "ovn-encap-ip": self.encap_ip or "127.0.0.1",
            "ovn-bridge-datapath-type": "netdev",
        }
        return [f'external_ids:{k}="{v}"' for k, v in ids.items()]

    def stop(self) -> None:
        """Stop ovn-controller, ovs-vswitchd, ovsdb-server; idempotent."""
        for prog in ("ovn-controller", "ovs-vswitchd", "ovsdb-server"):
            daemon.stop(self.run_dir / f"{prog}.pid", prog)

    def running(self) -> dict[str, int | None]:
        """pid (or None) of each daemon, from its pidfile."""
        return {
            prog: daemon.read_pid(self.run_dir / f"{prog}.pid", prog)
            for prog in ("ovsdb-server", "ovs-vswitchd", "ovn-controller")
        }

    # -- tools -------------------------------------------------------------

    def vsctl(self, *args: str) -> str:
        """ovs-vsctl against this node's database; returns stdout stripped."""
        return daemon.tool(["ovs-vsctl", f"--db={self.db_remote}", "--timeout=30", *args], self.env)

    def ofctl(self, *args: str) -> str:
        """ovs-ofctl talking to this node's vswitchd (bridge mgmt sockets live in run_dir)."""
        return daemon.tool(["ovs-ofctl", *args], self.env)

    def appctl(self, target: str, *args: str) -> str:
        """ovs-appctl to `ovs-vswitchd`, `ovsdb-server` or `ovn-controller`."""
        if target == "ovn-controller":
            pid = daemon.read_pid(self.run_dir / "ovn-controller.pid", "ovn-controller")
            ctl = self.run_dir / f"ovn-controller.{pid}.ctl"
        else:
            ctl = self.run_dir / f"{target}.ctl"
        return daemon.tool(["ovs-appctl", "-t", str(ctl), *args], self.env)

    def log_file(self, prog: str) -> Path:
        return self.run_dir / f"{prog}.log"
