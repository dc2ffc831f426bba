"""`kovn dataplane serve`: run the node dataplane service."""

from __future__ import annotations

import sys

from services.common.server import run
from services.dataplane.config import DataplaneConfig
from services.dataplane.service import DataplaneService


def main(argv: list[str]) -> int:
    return run(DataplaneService, DataplaneConfig, prog="dataplane", argv=argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
