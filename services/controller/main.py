"""Entry point: `kovn controller serve` / `python -m services.controller.main`."""

from __future__ import annotations

import sys

from services.common.server import run
from services.controller.config import ControllerConfig
from services.controller.service import ControllerService


def main(argv: list[str]) -> int:
    return run(ControllerService, ControllerConfig, prog="controller", argv=argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
