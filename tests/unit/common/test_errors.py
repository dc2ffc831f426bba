"""Typed errors carry the field and map to the documented status codes."""

from __future__ import annotations

import grpc
import pytest

from services.common import errors


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
        (errors.NotFound, grpc.StatusCode.NOT_FOUND),
        (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
        (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
        (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
        (errors.DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
        (errors.Conflict, grpc.StatusCode.ABORTED),
    ],
)
def test_status_codes(cls: type[errors.KovnError], code: grpc.StatusCode) -> None:
    assert cls.code == code
    assert cls("x").code != grpc.StatusCode.INTERNAL


def test_field_is_named_in_message() -> None:
    err = errors.InvalidArgument("'10.0.0.0/33' is not a valid CIDR", field="cidr")
    assert str(err) == "cidr: '10.0.0.0/33' is not a valid CIDR"
    assert errors.NotFound("no subnet 'x'").field is None


def test_retryable_only_for_temporary_errors() -> None:
    assert errors.Unavailable("down", retry_after=2.0).retryable
    assert errors.Conflict("lost race").retryable
    assert not errors.InvalidArgument("bad", field="f").retryable
    assert not errors.AlreadyExists("taken").retryable
