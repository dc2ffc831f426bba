"""Logging follows sys.stderr and never takes its caller down."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator

import pytest
import structlog

from services.common.logging import configure_logging, get_logger


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    """These tests reconfigure logging for the whole process; put it back."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def test_events_go_to_the_current_stderr_and_a_closed_one_is_survived(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configure_logging("json", "info")
    log = get_logger("kovn.test")
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    log.info("allocated", ip="10.16.0.5")
    event = json.loads(first.getvalue())
    assert event["event"] == "allocated" and event["ip"] == "10.16.0.5"
    assert event["component"] == "kovn.test" and event["level"] == "info"

    first.close()
    log.warning("stderr is gone")  # must not raise

    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    log.info("back")
    assert json.loads(second.getvalue())["event"] == "back"


def test_level_filters(monkeypatch: pytest.MonkeyPatch) -> None:
    configure_logging("json", "warning")
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    get_logger("kovn.test").info("quiet")
    get_logger("kovn.test").error("loud")
    lines = out.getvalue().splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["loud"]
