"""Write the kovn-cni executable a runtime calls (e.g. into /opt/cni/bin).

The console script pip generates starts a full interpreter with `site`,
which in an editable install also loads its path finder (pathlib, re, enum):
several times the cost of the shim itself. This launcher runs the same
`cni_shim.main` with `python -IS` (isolated, no site) and the package
directory put on sys.path explicitly.

    python -m cni_shim.launcher /opt/cni/bin/kovn-cni
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_TEMPLATE = """#!{python} -IS
import sys
sys.path.insert(0, {root!r})
from cni_shim.main import main
sys.exit(main())
"""


def install(dest: str, python: str = sys.executable) -> Path:
    root = str(Path(__file__).resolve().parents[1])
    path = Path(dest)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(_TEMPLATE.format(python=python, root=root))
    os.chmod(tmp, 0o755)
    tmp.replace(path)  # a runtime never executes a half-written file
    return path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m cni_shim.launcher DEST", file=sys.stderr)
        return 2
    print(install(args[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
