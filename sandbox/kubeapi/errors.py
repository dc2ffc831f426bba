"""Kubernetes API errors as metav1 Status objects.

Clients (kubernetes-asyncio, kubectl) decide what to do from the HTTP code and
the Status `reason`, so every failure the server reports goes through
`ApiError`, which carries exactly the fields the real API server sets.
"""

from __future__ import annotations

from typing import Any

# One field error: (field path, reason, message), as in Go's field.ErrorList.
Cause = tuple[str, str, str]

REASONS = {
    400: "BadRequest",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    500: "InternalError",
}


class ApiError(Exception):
    """A request failure, rendered as a metav1 Status by the HTTP layer."""

    def __init__(
        self,
        code: int,
        message: str,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or REASONS.get(code, "Unknown")
        self.details = details

    def status(self) -> dict[str, Any]:
        st: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            st["details"] = self.details
        return st


def _details(name: str, group: str, kind: str) -> dict[str, Any]:
    d: dict[str, Any] = {"name": name, "kind": kind}
    if group:
        d["group"] = group
    return d


def _qualified(plural: str, group: str) -> str:
    return f"{plural}.{group}" if group else plural


def _about(code: int, reason: str, plural: str, group: str, name: str, message: str) -> ApiError:
    """An error about one named object, with the details clients read."""
    return ApiError(code, message, reason, _details(name, group, plural))


def not_found(plural: str, group: str, name: str) -> ApiError:
    return _about(
        404, "NotFound", plural, group, name, f'{_qualified(plural, group)} "{name}" not found'
    )


def already_exists(plural: str, group: str, name: str) -> ApiError:
    msg = f'{_qualified(plural, group)} "{name}" already exists'
    return _about(409, "AlreadyExists", plural, group, name, msg)


def conflict(plural: str, group: str, name: str, why: str) -> ApiError:
    msg = f'Operation cannot be fulfilled on {_qualified(plural, group)} "{name}": {why}'
    return _about(409, "Conflict", plural, group, name, msg)


def bad_request(message: str) -> ApiError:
    return ApiError(400, message, "BadRequest")


def invalid(kind: str, group: str, name: str, causes: list[Cause]) -> ApiError:
    """422 Invalid; causes are (field, reason, message) like field.ErrorList."""
    summary = ", ".join(f"{f}: {m}" if f else m for f, _, m in causes)
    if len(causes) > 1:
        summary = "[" + summary + "]"
    qual = f"{kind}.{group}" if group else kind
    details = _details(name, group, kind)
    details["causes"] = [{"reason": r, "message": m, "field": f} for f, r, m in causes]
    return ApiError(422, f'{qual} "{name}" is invalid: {summary}', "Invalid", details)


def gone(message: str) -> ApiError:
    return ApiError(410, message, "Expired")
