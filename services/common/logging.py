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
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)


def get_logger(name: str) -> Any:
    """A structlog logger carrying the module name as `component`."""
    return structlog.get_logger(component=name)
