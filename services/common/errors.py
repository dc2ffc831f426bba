"""The project's typed errors, and the one place they become gRPC status codes.

Service code raises what went wrong in domain terms (`InvalidArgument` naming
the field, `AlreadyExists` naming the holder, ...). The chassis interceptor
turns them into the matching status code, so every kovn service answers the
same way and INTERNAL is left meaning "a bug". Clients turn a failed call
back into the same typed error with `from_rpc_error`, which lets a caller
decide to retry (`retryable`) without knowing gRPC codes.
"""

from __future__ import annotations

from typing import Any, ClassVar

import grpc


class KovnError(Exception):
    """Base of every expected error; `status` is the gRPC code it maps to."""

    status: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.message = message
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class InvalidArgument(KovnError):
    """The request is wrong; `field` names the offending field."""

    status = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(KovnError):
    status = grpc.StatusCode.NOT_FOUND


class AlreadyExists(KovnError):
    """The thing exists or is held by someone else; the message names the holder."""

    status = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(KovnError):
    """The system is not in a state that allows this (e.g. subnet still in use)."""

    status = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(KovnError):
    status = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(KovnError):
    """Temporary: a dependency is down or we are draining; retry later."""

    status = grpc.StatusCode.UNAVAILABLE
    retryable = True

    def __init__(
        self, message: str, *, field: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, field=field)
        self.retry_after = retry_after


class DeadlineExceeded(KovnError):
    status = grpc.StatusCode.DEADLINE_EXCEEDED
    retryable = True


class Conflict(KovnError):
    """Lost an optimistic-concurrency race; the caller should re-read and retry."""

    status = grpc.StatusCode.ABORTED
    retryable = True


class Internal(KovnError):
    """A bug: something the code did not expect."""


_BY_STATUS: dict[grpc.StatusCode, type[KovnError]] = {
    cls.status: cls
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
