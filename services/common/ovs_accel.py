"""Make sure the `ovs` package's C JSON parser (`ovs._json`) is importable.

The OVSDB IDL parses every update through `ovs.json`; the pure-Python
fallback is many times slower than the C extension. PyPI's `ovs` sdist only
builds the extension when libopenvswitch headers are present, which Debian 12
does not ship, but Debian's `python3-openvswitch` carries a self-contained
build of the same module for CPython 3.11. `make setup` runs this module to
put that build next to the PyPI package when the extension is missing.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import sysconfig
from pathlib import Path

DEBIAN_OVS_DIR = Path("/usr/lib/python3/dist-packages/ovs")


def accelerated() -> bool:
    """True when the C JSON parser is importable."""
    return importlib.util.find_spec("ovs._json") is not None


def install() -> str:
    """Copy Debian's `_json` build into the installed `ovs` package if needed."""
    if accelerated():
        return "ovs._json already importable"
    spec = importlib.util.find_spec("ovs")
    if spec is None or spec.origin is None:
        raise SystemExit("the `ovs` package is not installed")
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    source = DEBIAN_OVS_DIR / f"_json{suffix}"
    if not source.exists():
        raise SystemExit(f"{source} not found: install the Debian package python3-openvswitch")
    target = Path(spec.origin).parent / source.name
    shutil.copy2(source, target)
    if not accelerated():
        raise SystemExit(f"copied {source} to {target} but ovs._json still does not import")
    return f"installed {target}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--install", action="store_true", help="copy Debian's build if missing")
    args = parser.parse_args(argv)
    if args.install:
        print(install())
        return 0
    print("ovs._json importable" if accelerated() else "ovs._json MISSING (slow JSON parser)")
    return 0 if accelerated() else 1


if __name__ == "__main__":
    sys.exit(main())
