"""The dataplane's CNI failures as kovn errors, and the one table that gives
each its CNI code.

Every failure the dataplane raises on purpose is a `KovnError`
(services.common.errors): its gRPC code and its retryability come from that
taxonomy, like everywhere else in kovn. Only at the CNI boundary (the
dataplane servicer) does a failure become the spec's error object, through
`to_cni`: a class listed in `CNI_CODES` gets its code, any other retryable
error 11 ("try again"; 50 "not available" for STATUS), anything else 105.
The codes a runtime sees are the ones in DESIGN.md §5 and cni_shim.spec.
"""

from __future__ import annotations

from cni_shim import spec
from cni_shim.spec import CniError
from services.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    KovnError,
    NotFound,
)


class InvalidEnv(InvalidArgument):
    """A CNI_* environment variable (CNI_ARGS included) is missing or wrong."""


class InvalidConfig(InvalidArgument):
    """The network configuration on stdin is wrong."""


class UnknownContainer(NotFound):
    """CHECK of an attachment this node never acknowledged."""


class NetnsMissing(NotFound):
    """The network namespace path does not exist or is not a namespace."""

    def __init__(self, message: str, *, field: str | None = "CNI_NETNS") -> None:
        super().__init__(message, field=field)


class IfnameTaken(AlreadyExists):
    """The interface name already exists in the pod's namespace."""

    def __init__(self, message: str, *, field: str | None = "CNI_IFNAME") -> None:
        super().__init__(message, field=field)


class PodNotFound(NotFound):
    """The controller knows no such pod."""


class PodNetworkRefused(FailedPrecondition):
    """The controller refused the pod's network, or answered something unusable."""


class CheckFailed(FailedPrecondition):
    """CHECK found the attachment differs from what ADD built; `details` lists how."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


#: The CNI code of each dataplane failure (first match wins: subclasses first).
CNI_CODES: tuple[tuple[type[KovnError], int], ...] = (
    (InvalidEnv, spec.INVALID_ENV),
    (InvalidConfig, spec.INVALID_CONFIG),
    (UnknownContainer, spec.UNKNOWN_CONTAINER),
    (PodNotFound, spec.POD_NOT_FOUND),
    (PodNetworkRefused, spec.POD_NETWORK_REFUSED),
    (IfnameTaken, spec.IFNAME_TAKEN),
    (NetnsMissing, spec.NETNS_MISSING),
    (CheckFailed, spec.CHECK_FAILED),
)


def cni_code(err: KovnError, command: str = "") -> int:
    """The CNI code of a kovn error, for a request of `command`."""
    for cls, code in CNI_CODES:
        if isinstance(err, cls):
            return code
    if err.retryable:
        # STATUS answers "not available" (the spec's 50), the rest "try again".
        return spec.NOT_AVAILABLE if command == "STATUS" else spec.TRY_AGAIN
    return spec.DATAPLANE_FAILURE


def is_bug(exc: BaseException) -> bool:
    """Neither a CNI error nor an expected kovn error: a dataplane bug."""
    if isinstance(exc, CniError):
        return False
    return not isinstance(exc, KovnError) or cni_code(exc) == spec.DATAPLANE_FAILURE


def to_cni(exc: Exception, command: str = "") -> CniError:
    """The CNI error object a failed request answers with."""
    if isinstance(exc, CniError):  # from cni_shim.spec's request validation
        return exc
    if isinstance(exc, KovnError):
        return CniError(cni_code(exc, command), str(exc), getattr(exc, "details", ""))
    return CniError(spec.DATAPLANE_FAILURE, f"kovn dataplane failed: {exc!r}")
