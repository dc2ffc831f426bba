"""Structured logging for every kovn process.

One configuration so that every service logs the same way: JSON lines in
production (one object per event, easy to ship and query), key=value on a
terminal. Context bound with `structlog.contextvars` (request id, pod,
container id) is merged into every event logged while it is bound, which is
how a gRPC request's id reaches log lines written deep in service code.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("auto", "json", "console")


def configure_logging(fmt: str = "auto", level: str = "info") -> None:
    """Set up structlog (and route stdlib logging at WARNING to stderr)."""
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=_StderrLogger,
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)


def get_logger(name: str) -> Any:
    """A structlog logger carrying the module name as `component`."""
    return structlog.get_logger(component=name)


class _StderrLogger:
    """Writes each event to whatever `sys.stderr` is at that moment.

    structlog's PrintLogger keeps the stream it was created with; when that
    stream is later replaced and closed (pytest's capture does this between
    tests, a daemonising parent may too), every later log call would raise
    and take the task that logged down with it.
    """

    def __init__(self, *args: Any) -> None:
        pass

    def msg(self, message: str) -> None:
        stream = sys.stderr
        try:
            stream.write(message + "\n")
            stream.flush()
        except (ValueError, OSError):
            pass  # no usable stderr: losing a log line beats crashing the caller

    log = debug = info = warn = warning = msg
    error = err = critical = exception = fatal = failure = msg
