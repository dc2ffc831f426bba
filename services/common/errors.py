"""The project's typed errors, and the one place they become gRPC status codes.

Service code raises what went wrong in domain terms (`InvalidArgument` naming
the field, `AlreadyExists` naming the holder, ...). The chassis interceptor
turns them into the matching status code, so every kovn service answers the
same way and INTERNAL is left meaning "a bug". Clients turn a failed call
back into the same typed error with `from_rpc_error`, which lets a caller
decide to retry (`retryable`) without knowing gRPC codes.

Every error a kovn component raises on purpose is a `KovnError`: the
Kubernetes client's `KubeError`, the OVSDB bridge's `OvsdbError`, the ipam
store's refusals and the dataplane's CNI errors included. A caller that must
decide "try again later or give up" (the controller's work queue, the CNI
path) reads one attribute, `retryable`, and nothing else.
"""

from __future__ import annotations

from typing import Any

import grpc


class KovnError(Exception):
    """Base of every expected error; `code` is the gRPC status it maps to.

    `code` and `retryable` are class defaults that a subclass may refine per
    instance (a `KubeError` is retryable for a 503, not for a 422).
    """

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    retryable: bool = False

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.message = message
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class InvalidArgument(KovnError):
    """The request is wrong; `field` names the offending field."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(KovnError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(KovnError):
    """The thing exists or is held by someone else; the message names the holder."""

    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(KovnError):
    """The system is not in a state that allows this (e.g. subnet still in use)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(KovnError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(KovnError):
    """Temporary: a dependency is down or we are draining; retry later."""

    code = grpc.StatusCode.UNAVAILABLE
    retryable = True

    def __init__(
        self, message: str, *, field: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, field=field)
        self.retry_after = retry_after


class DeadlineExceeded(KovnError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED
    retryable = True


class Conflict(KovnError):
    """Lost an optimistic-concurrency race; the caller should re-read and retry."""

    code = grpc.StatusCode.ABORTED
    retryable = True


class Internal(KovnError):
    """A bug: something the code did not expect."""


_BY_STATUS: dict[grpc.StatusCode, type[KovnError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        ResourceExhausted,
        Unavailable,
        DeadlineExceeded,
        Conflict,
    )
}
# A client cancelling or a server being unreachable is temporary for the caller.
_BY_STATUS[grpc.StatusCode.CANCELLED] = Unavailable

FIELD_METADATA_KEY = "kovn-field"


def from_rpc_error(err: grpc.RpcError) -> KovnError:
    """Turn a failed call back into the typed error the server raised."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = (err.details() if hasattr(err, "details") else None) or str(err)
    field = None
    trailers = err.trailing_metadata() if hasattr(err, "trailing_metadata") else None
    items: list[Any] = list(trailers or ())
    for key, value in items:
        if key == FIELD_METADATA_KEY:
            field = str(value)
    cls = _BY_STATUS.get(code, Internal)
    result = cls(details)
    # The server already put the field into the message; keep it only as data.
    result.field = field
    return result
