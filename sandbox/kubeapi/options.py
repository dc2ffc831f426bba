"""Request options shared by the verbs and the controllers, and the
timestamp format Kubernetes writes (RFC 3339, seconds, UTC)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


def now_str(delta: float = 0) -> str:
    t = datetime.now(UTC) + timedelta(seconds=delta)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class DeleteOptions:
    grace_period: int | None = None
    precondition_uid: str | None = None
    precondition_rv: str | None = None
    propagation: str | None = None
    dry_run: bool = False


@dataclass
class WriteOptions:
    dry_run: bool = False
    field_validation: str = "Warn"  # Ignore | Warn | Strict
    field_manager: str = ""
