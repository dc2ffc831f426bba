"""Entry point of the ipam service: `kovn ipam serve` or `python -m services.ipam.main`."""

from __future__ import annotations

import sys

from services.common.server import run
from services.ipam.config import IpamConfig
from services.ipam.service import IpamService


def main(argv: list[str]) -> int:
    return run(IpamService, IpamConfig, prog="ipam", argv=argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
