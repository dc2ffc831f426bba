"""gRPC channels from one kovn service to another.

Targets are written the way operators write them ("unix:/run/kovn/x.sock",
"host:port"); TLS is used when a CA is given, mutual TLS when a client
certificate is given too. The request id bound in the caller's log context
travels as `x-request-id`, so one CNI ADD can be followed through the
dataplane, the controller and ipam logs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import structlog

from services.common.interceptors import REQUEST_ID_KEY


class _RequestIdInterceptor(
    grpc.aio.UnaryUnaryClientInterceptor,  # type: ignore[type-arg]
    grpc.aio.UnaryStreamClientInterceptor,  # type: ignore[type-arg]
):
    async def _add(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        request_id = structlog.contextvars.get_contextvars().get("request_id")
        if not request_id:
            return details
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        metadata[REQUEST_ID_KEY] = str(request_id)
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(await self._add(details), request)

    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(await self._add(details), request)


def channel(target: str, *, ca: str = "", cert: str = "", key: str = "") -> grpc.aio.Channel:
    """A channel to `target`; TLS when `ca` is set, mTLS with `cert` and `key`."""
    interceptors: Any = [_RequestIdInterceptor()]
    if target.startswith("unix:") or not ca:
        return grpc.aio.insecure_channel(target, interceptors=interceptors)
    creds = grpc.ssl_channel_credentials(
        root_certificates=Path(ca).read_bytes(),
        private_key=Path(key).read_bytes() if key else None,
        certificate_chain=Path(cert).read_bytes() if cert else None,
    )
    return grpc.aio.secure_channel(target, creds, interceptors=interceptors)
