"""grpc.health.v1 for a kovn service, with one status per gRPC service.

Kubernetes probes and operators (`grpcurl ... grpc.health.v1.Health/Check`)
ask whether a service can take work. A service reports NOT_SERVING until it
has started, may flip a single gRPC service when a dependency goes away
(the dataplane before the node is bootstrapped), and everything turns
NOT_SERVING while the process drains on SIGTERM.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.grpc_types import Context
from services.common.metrics import SERVING

_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN

OVERALL = ""  # the empty service name means "the server as a whole"


class Health:
    """Per-service health status, handed to `Service.start()`."""

    def __init__(self, service: str, names: list[str]) -> None:
        self.servicer = _HealthServicer()
        self._service = service
        self._names = list(names)
        self._serving: dict[str, bool] = {}
        self._chosen: set[str] = set()
        self._draining = False
        for name in [OVERALL, *self._names]:
            self._apply(name, False)

    def set(self, service_name: str, serving: bool) -> None:
        """Report one gRPC service (or OVERALL) as serving or not.

        A status set here by the service wins over the chassis' default of
        SERVING once `start()` returns (see `serve_unset`).
        """
        self._chosen.add(service_name)
        self._set(service_name, serving)

    def _set(self, service_name: str, serving: bool) -> None:
        if self._draining:
            serving = False
        self._apply(service_name, serving)

    def serve_unset(self) -> None:
        """SERVING for every name the service has not reported on itself."""
        for name in [OVERALL, *self._names]:
            if name not in self._chosen:
                self._set(name, True)

    def set_all(self, serving: bool) -> None:
        for name in [OVERALL, *self._names]:
            self.set(name, serving)

    def drain(self) -> None:
        """Everything NOT_SERVING from now on, whatever the service says."""
        for name in [OVERALL, *self._names]:
            self._set(name, False)
        self._draining = True

    def serving(self, service_name: str = OVERALL) -> bool:
        return self._serving.get(service_name, False)

    def _apply(self, name: str, serving: bool) -> None:
        self._serving[name] = serving
        self.servicer.set(name, _SERVING if serving else _NOT_SERVING)
        if name == OVERALL:
            SERVING.labels(self._service).set(1 if serving else 0)


class _HealthServicer(health_pb2_grpc.HealthServicer):  # type: ignore[misc]
    """Check and Watch over a dict of statuses; `set` is synchronous.

    (grpcio-health-checking's asyncio servicer makes `set` a coroutine, which
    would force every status change in service code to be awaited.)
    """

    def __init__(self) -> None:
        self._status: dict[str, int] = {}
        self._changed: dict[str, asyncio.Event] = {}

    def set(self, name: str, status: int) -> None:
        if self._status.get(name) == status:
            return
        self._status[name] = status
        event = self._changed.pop(name, None)
        if event is not None:
            event.set()

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: Context
    ) -> health_pb2.HealthCheckResponse:
        status = self._status.get(request.service)
        if status is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return health_pb2.HealthCheckResponse(status=status)

    async def Watch(
        self, request: health_pb2.HealthCheckRequest, context: Context
    ) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        last = None
        while True:
            # Take the event before reading the status: a change after the
            # read then sets this very event, so no change is missed.
            event = self._changed.setdefault(request.service, asyncio.Event())
            status = self._status.get(request.service, _UNKNOWN)
            if status != last:
                last = status
                yield health_pb2.HealthCheckResponse(status=status)
                continue
            await event.wait()
