"""A store refusal that reaches a caller is one of the project's typed errors."""

from __future__ import annotations

import sqlite3

import grpc
import pytest

from services.common.errors import AlreadyExists, Conflict, KovnError, Unavailable
from services.ipam.model import AllocationRecord, Cooling, Owner
from services.ipam.store.base import (
    AddressCooling,
    AddressTaken,
    MacTaken,
    OwnerExists,
    StoreRefusal,
    SubnetChanged,
)
from services.ipam.store.sqlite_writer import _typed

OWNER = Owner("net", "ns", "pod")


@pytest.mark.parametrize(
    ("refusal", "kind", "code", "field"),
    [
        (OwnerExists(AllocationRecord(OWNER, ["10.0.0.2"], "0a:00:00:00:00:01")), AlreadyExists,
         grpc.StatusCode.ALREADY_EXISTS, "owner"),
        (AddressTaken("10.0.0.2", OWNER.key), AlreadyExists, grpc.StatusCode.ALREADY_EXISTS, "ips"),
        (MacTaken("0a:00:00:00:00:01", OWNER.key), AlreadyExists,
         grpc.StatusCode.ALREADY_EXISTS, "mac"),
        (AddressCooling(Cooling("net", "10.0.0.2", 5, OWNER.key)), Unavailable,
         grpc.StatusCode.UNAVAILABLE, "ips"),
        (SubnetChanged("subnet 'net' changed"), Conflict, grpc.StatusCode.ABORTED, None),
    ],
)  # fmt: skip
def test_each_refusal_is_a_typed_error(
    refusal: StoreRefusal, kind: type[KovnError], code: grpc.StatusCode, field: str | None
) -> None:
    assert isinstance(refusal, kind)
    assert refusal.code == code
    assert refusal.field == field
    assert refusal.retryable == (kind is not AlreadyExists)


def test_a_failing_sqlite_operation_is_unavailable() -> None:
    err = _typed(sqlite3.OperationalError("disk I/O error"))
    assert isinstance(err, Unavailable) and "disk I/O error" in str(err)
    refusal = AddressTaken("10.0.0.2", OWNER.key)
    assert _typed(refusal) is refusal
