"""Write the kovn-cni executable a runtime calls (e.g. into /opt/cni/bin).

The console script pip generates starts a full interpreter with `site`,
which in an editable install also loads its path finder (pathlib, re, enum):
several times the cost of the shim itself. This launcher runs the same
`cni_shim.main` with `python -IS` (isolated, no site) and the package
directory put on sys.path explicitly.

With --vendor the shim's own modules (stdlib only) are copied next to the
executable, so a DaemonSet's init container can install kovn-cni on a host
whose only Python is the system one:

    python -m cni_shim.launcher /opt/cni/bin/kovn-cni --vendor --python /usr/bin/python3
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

_TEMPLATE = """#!{python} -IS
import sys
sys.path.insert(0, {root!r})
from cni_shim.main import main
sys.exit(main())
"""
_PACKAGE = Path(__file__).resolve().parent


def install(dest: str, python: str = sys.executable, *, vendor: bool = False) -> Path:
    path = Path(dest)
    path.parent.mkdir(parents=True, exist_ok=True)
    root = str(_PACKAGE.parent)
    if vendor:
        lib = path.with_name(path.name + ".lib")
        staging = path.with_name(path.name + ".lib.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        (staging / "cni_shim").mkdir(parents=True)
        for module in _PACKAGE.glob("*.py"):
            shutil.copy2(module, staging / "cni_shim" / module.name)
        shutil.rmtree(lib, ignore_errors=True)
        staging.replace(lib)
        root = str(lib)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(_TEMPLATE.format(python=python, root=root))
    os.chmod(tmp, 0o755)
    tmp.replace(path)  # a runtime never executes a half-written file
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cni_shim.launcher")
    parser.add_argument("dest", help="where to write the executable, e.g. /opt/cni/bin/kovn-cni")
    parser.add_argument("--python", default=sys.executable, help="interpreter to run it with")
    parser.add_argument("--vendor", action="store_true", help="copy the shim's modules along")
    args = parser.parse_args(argv)
    print(install(args.dest, args.python, vendor=args.vendor))
    return 0


if __name__ == "__main__":
    sys.exit(main())
