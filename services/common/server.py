"""The chassis every kovn gRPC service runs in.

A service supplies its servicers and its start/stop work; the chassis gives
all of them the same operator-facing behaviour: TCP and/or unix socket
listeners (the socket created 0600 unless configured), optional TLS or
mutual TLS, grpc.health.v1 and server reflection (so `grpcurl list` and
`describe` need no .proto files), the request interceptor, /metrics, and a
graceful shutdown: on SIGTERM/SIGINT health turns NOT_SERVING, new calls are
refused with UNAVAILABLE, calls in flight get `grace_period` to finish, and
the process exits 0. After `start()` every registered gRPC service reports
SERVING unless the service has set its status itself (e.g. the dataplane
stays NOT_SERVING until its node is bootstrapped).
"""

from __future__ import annotations

import abc
import asyncio
import json
import os
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.common.config import ConfigError, ServerConfig, exit_on_config_error, load_config
from services.common.health import Health
from services.common.interceptors import ChassisInterceptor, ServerState
from services.common.logging import configure_logging, get_logger
from services.common.metrics import start_metrics_server

log = get_logger(__name__)

HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


class Service(abc.ABC):
    """What a kovn service hands to the chassis."""

    name: ClassVar[str]

    @abc.abstractmethod
    def register(self, server: grpc.aio.Server) -> list[str]:
        """Add the servicers to `server`; return their full gRPC service names."""

    async def start(self, health: Health) -> None:  # noqa: B027 - optional hook
        """Open stores, start background tasks. Called before SERVING."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Release what start() took. Called after the last call finished."""


C = TypeVar("C", bound=ServerConfig)


class Chassis:
    """One running server: listeners, health, drain."""

    def __init__(self, service: Service, config: ServerConfig) -> None:
        self.service = service
        self.config = config
        self.state = ServerState(service.name)
        self.server = grpc.aio.server(interceptors=[ChassisInterceptor(self.state)])
        names = service.register(self.server)
        self.health = Health(service.name, names)
        health_pb2_grpc.add_HealthServicer_to_server(self.health.servicer, self.server)
        reflection.enable_server_reflection(
            [*names, HEALTH_SERVICE, reflection.SERVICE_NAME], self.server
        )
        self.addresses: dict[str, str] = {}
        self._stop = asyncio.Event()

    def _bind(self) -> None:
        cfg = self.config
        if cfg.listen:
            if cfg.tls:
                creds = grpc.ssl_server_credentials(
                    [(Path(cfg.tls_key).read_bytes(), Path(cfg.tls_cert).read_bytes())],
                    root_certificates=(
                        Path(cfg.tls_client_ca).read_bytes() if cfg.tls_client_ca else None
                    ),
                    require_client_auth=bool(cfg.tls_client_ca),
                )
                port = self.server.add_secure_port(cfg.listen, creds)
            else:
                port = self.server.add_insecure_port(cfg.listen)
            if port == 0:
                raise ConfigError("listen", cfg.listen, "cannot bind (address in use?)")
            host = cfg.listen.rpartition(":")[0]
            self.addresses["grpc"] = f"{host}:{port}"
        if cfg.socket:
            path = Path(cfg.socket)
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.is_socket():
                path.unlink()  # left by a crashed predecessor; we are the owner now
            # Create the socket with no access for others, then set the asked mode:
            # there is no moment at which anyone else could connect.
            old = os.umask(0o177)
            try:
                if self.server.add_insecure_port(f"unix:{path}") == 0:
                    raise ConfigError("socket", cfg.socket, "cannot bind")
            finally:
                os.umask(old)
            self.addresses["socket"] = str(path)

    async def run(self) -> None:
        self._bind()
        if self.config.metrics:
            host, port = start_metrics_server(self.config.metrics)
            self.addresses["metrics"] = f"{host}:{port}"
        await self.server.start()
        if self.config.socket:
            os.chmod(self.config.socket, int(self.config.socket_mode, 8))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        await self.service.start(self.health)
        self.health.serve_unset()
        self._write_ready_file()
        log.info("serving", service=self.service.name, **self.addresses)
        await self._stop.wait()
        await self._drain()

    def request_stop(self) -> None:
        self._stop.set()

    async def _drain(self) -> None:
        grace = self.config.grace_period
        deadline = time.monotonic() + grace
        log.info("draining", in_flight=self.state.in_flight, grace_period=grace)
        self.health.drain()
        self.state.draining = True
        idle = asyncio.Event()
        self.state.on_idle(idle.set)
        if self.state.in_flight == 0:
            idle.set()
        try:
            await asyncio.wait_for(idle.wait(), timeout=grace)
        except TimeoutError:
            log.warning("grace period over; cancelling calls", in_flight=self.state.in_flight)
        await self.server.stop(max(0.0, deadline - time.monotonic()))
        await self.service.stop()
        if self.config.socket:
            Path(self.config.socket).unlink(missing_ok=True)
        log.info("stopped", service=self.service.name)

    def _write_ready_file(self) -> None:
        if not self.config.ready_file:
            return
        path = Path(self.config.ready_file)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.addresses))
        tmp.replace(path)  # readers never see a half-written file


def run(
    factory: Callable[[C], Service],
    config_cls: type[C],
    *,
    prog: str,
    argv: Sequence[str],
) -> int:
    """Parse configuration, then serve until SIGTERM/SIGINT. Returns the exit status."""
    try:
        config = load_config(config_cls, prog=prog, argv=argv)
    except ConfigError as err:
        return exit_on_config_error(err)
    configure_logging(config.log_format, config.log_level)

    async def serve() -> None:
        # grpc.aio objects bind to the running loop: build everything inside it.
        await Chassis(factory(config), config).run()

    try:
        asyncio.run(serve())
    except ConfigError as err:
        return exit_on_config_error(err)
    return 0
