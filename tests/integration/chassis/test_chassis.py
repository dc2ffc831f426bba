"""The service chassis, seen from outside: a real process, real clients."""

from __future__ import annotations

import asyncio
import json
import signal
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.errors import InvalidArgument, from_rpc_error
from tests.integration.chassis.conftest import ROOT, Proc, grpcurl, start_service, stop

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _call(channel: grpc.aio.Channel, method: str, payload: bytes, **kw: object) -> object:
    return channel.unary_unary(f"/kovn.test.v1.Sleeper/{method}")(payload, **kw)


def test_grpcurl_lists_services_and_checks_health_over_tcp_and_unix(sleeper: Proc) -> None:
    listed = grpcurl("-plaintext", sleeper.addresses["grpc"], "list")
    assert listed.returncode == 0, listed.stderr
    names = set(listed.stdout.split())
    assert {"grpc.health.v1.Health", "kovn.test.v1.Sleeper"} <= names

    via_unix = grpcurl("-plaintext", "-unix", sleeper.addresses["socket"], "list")
    assert via_unix.returncode == 0, via_unix.stderr
    assert set(via_unix.stdout.split()) == names

    check = grpcurl("-plaintext", sleeper.addresses["grpc"], "grpc.health.v1.Health/Check")
    assert check.returncode == 0, check.stderr
    assert json.loads(check.stdout) == {"status": "SERVING"}

    per_service = grpcurl(
        "-plaintext", "-d", '{"service": "kovn.test.v1.Sleeper"}',
        sleeper.addresses["grpc"], "grpc.health.v1.Health/Check",
    )  # fmt: skip
    assert json.loads(per_service.stdout) == {"status": "SERVING"}


def test_status_set_by_the_service_at_start_is_kept(tmp_path: Path) -> None:
    proc = start_service(
        [sys.executable, "-m", "tests.integration.chassis.sleeper",
         "--listen", "127.0.0.1:0", "--start-not-serving"],
        tmp_path,
    )  # fmt: skip
    try:
        target = proc.addresses["grpc"]
        own = grpcurl("-plaintext", "-d", '{"service": "kovn.test.v1.Sleeper"}',
                      target, "grpc.health.v1.Health/Check")  # fmt: skip
        assert json.loads(own.stdout) == {"status": "NOT_SERVING"}
        overall = grpcurl("-plaintext", target, "grpc.health.v1.Health/Check")
        assert json.loads(overall.stdout) == {"status": "SERVING"}
    finally:
        stop(proc)


def test_unix_socket_is_private(sleeper: Proc) -> None:
    mode = stat.S_IMODE(Path(sleeper.addresses["socket"]).stat().st_mode)
    assert mode == 0o600


async def test_sigterm_lets_in_flight_call_finish_and_reports_not_serving(sleeper: Proc) -> None:
    async with grpc.aio.insecure_channel(sleeper.addresses["grpc"]) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        watch = health.Watch(health_pb2.HealthCheckRequest())
        assert (await watch.read()).status == SERVING

        # Long enough that the checks below finish first even on a loaded machine.
        in_flight = asyncio.ensure_future(_call(channel, "Sleep", b"5.0"))  # type: ignore[arg-type]
        await _wait_metric(sleeper, 'kovn_grpc_requests_in_flight{service="sleeper"} 1.0')
        sleeper.popen.send_signal(signal.SIGTERM)

        # The Watch stream tells us the moment the server starts draining.
        assert (await watch.read()).status == NOT_SERVING
        check = await health.Check(health_pb2.HealthCheckRequest())
        assert check.status == NOT_SERVING
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _call(channel, "Sleep", b"0")  # type: ignore[misc]
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "shutting down" in (refused.value.details() or "")

        assert await in_flight == b"done"
    assert await asyncio.to_thread(sleeper.popen.wait, 15) == 0
    assert not Path(sleeper.addresses["socket"]).exists()


async def test_typed_errors_map_to_status_codes_and_name_the_field(sleeper: Proc) -> None:
    async with grpc.aio.insecure_channel(sleeper.addresses["grpc"]) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await _call(channel, "Fail", b"10.0.0.0/33", metadata=(("x-request-id", "req-42"),))  # type: ignore[misc]
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert bad.value.details() == "cidr: '10.0.0.0/33' is not a valid CIDR"
        trailers = dict(bad.value.trailing_metadata() or ())
        assert trailers["x-request-id"] == "req-42"
        typed = from_rpc_error(bad.value)
        assert isinstance(typed, InvalidArgument) and typed.field == "cidr"

        with pytest.raises(grpc.aio.AioRpcError) as bug:
            await _call(channel, "Boom", b"")  # type: ignore[misc]
        assert bug.value.code() == grpc.StatusCode.INTERNAL
        assert "ValueError" in (bug.value.details() or "")

    logs = [json.loads(line) for line in sleeper.stderr().splitlines() if line.startswith("{")]
    failed = [e for e in logs if e.get("event") == "request failed"]
    assert (
        failed and failed[0]["request_id"] == "req-42" and failed[0]["code"] == "INVALID_ARGUMENT"
    )
    assert any(e.get("event") == "bug: unexpected error" and "exception" in e for e in logs)

    metrics = _metrics(sleeper)
    assert (
        'kovn_grpc_requests_total{code="INVALID_ARGUMENT",method="Fail",service="sleeper"} 1.0'
        in metrics
    )
    assert (
        'kovn_grpc_requests_total{code="INTERNAL",method="Boom",service="sleeper"} 1.0' in metrics
    )
    assert (
        'kovn_grpc_request_duration_seconds_count{method="Fail",service="sleeper"} 1.0' in metrics
    )


def _metrics(proc: Proc) -> str:
    with urllib.request.urlopen(f"http://{proc.addresses['metrics']}/metrics", timeout=5) as r:
        text: str = r.read().decode()
        return text


async def _wait_metric(proc: Proc, line: str, timeout: float = 10.0) -> None:
    """Scrape until a metric line appears (the server's only outward sign of a call in flight)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if line in await asyncio.to_thread(_metrics, proc):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"metric {line!r} never appeared")


# --- configuration errors -------------------------------------------------


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["--listen", "127.0.0.1:0", "--grace-period", "soon"], {}, "grace_period='soon'"),
        (["--listen", "nowhere"], {}, "listen='nowhere'"),
        (["--listen", "127.0.0.1:0", "--log-level", "loud"], {}, "log_level='loud'"),
        (["--socket", "/tmp/x.sock", "--socket-mode", "rw"], {}, "socket_mode='rw'"),
        (["--listen", "127.0.0.1:0"], {"KOVN_SLEEPER_GRACE_PERIOD": "-1"}, "grace_period"),
        (["--listen", "127.0.0.1:0", "--tls-cert", "/nonexistent.pem", "--tls-key", "/k"], {},
         "tls_cert='/nonexistent.pem'"),
        ([], {}, "listen"),
    ],
)  # fmt: skip
def test_bad_config_exits_nonzero_naming_the_key(
    args: list[str], env: dict[str, str], named: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.integration.chassis.sleeper", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **env},
    )  # fmt: skip
    assert result.returncode == 2
    assert named in result.stderr
    assert "invalid configuration" in result.stderr


def test_bad_yaml_key_is_named(tmp_path: Path) -> None:
    config = tmp_path / "sleeper.yaml"
    config.write_text("listen: 127.0.0.1:0\ngrace-perod: 3\n")
    result = subprocess.run(
        [sys.executable, "-m", "tests.integration.chassis.sleeper", "--config", str(config)],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
    assert "grace-perod=3" in result.stderr and "unknown setting" in result.stderr


# --- TLS ---------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _make_pki(d: Path) -> None:
    """A CA, a server certificate for 127.0.0.1, a client of that CA and a rogue client."""
    for ca in ("ca", "rogue-ca"):
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days", "1",
                 "-subj", f"/CN={ca}", cwd=d)  # fmt: skip
    for name, ca, ext in (
        ("server", "ca", "subjectAltName=IP:127.0.0.1"),
        ("client", "ca", "extendedKeyUsage=clientAuth"),
        ("rogue", "rogue-ca", "extendedKeyUsage=clientAuth"),
    ):
        key_and_csr = ("-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 *key_and_csr, cwd=d)  # fmt: skip
        (d / f"{name}.ext").write_text(ext + "\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", "1",
                 "-extfile", f"{name}.ext", cwd=d)  # fmt: skip


async def test_mutual_tls_refuses_clients_without_a_valid_certificate(tmp_path: Path) -> None:
    _make_pki(tmp_path)
    proc = start_service(
        [
            sys.executable, "-m", "tests.integration.chassis.sleeper",
            "--listen", "127.0.0.1:0",
            "--tls-cert", str(tmp_path / "server.pem"),
            "--tls-key", str(tmp_path / "server.key"),
            "--tls-client-ca", str(tmp_path / "ca.pem"),
        ],
        tmp_path,
    )  # fmt: skip
    try:
        target = proc.addresses["grpc"]
        ca = (tmp_path / "ca.pem").read_bytes()

        async def check(key: str | None, cert: str | None) -> int:
            creds = grpc.ssl_channel_credentials(
                root_certificates=ca,
                private_key=(tmp_path / key).read_bytes() if key else None,
                certificate_chain=(tmp_path / cert).read_bytes() if cert else None,
            )
            async with grpc.aio.secure_channel(target, creds) as channel:
                reply = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=5
                )
                status: int = reply.status
                return status

        assert await check("client.key", "client.pem") == SERVING
        for key, cert in ((None, None), ("rogue.key", "rogue.pem")):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await check(key, cert)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE

        plaintext = grpcurl("-plaintext", "-max-time", "3", target, "list")
        assert plaintext.returncode != 0
    finally:
        stop(proc)
