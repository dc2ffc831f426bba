"""Regenerate etcd_subset_pb2.py(i) from etcd_subset.proto."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
HEADER = "# Generated from etcd_subset.proto by `python -m services.ipam.store.etcdpb`.\n"


def main() -> int:
    from grpc_tools import protoc

    if protoc.main(["protoc", f"-I{HERE}", f"--python_out={HERE}", f"--pyi_out={HERE}",
                    str(HERE / "etcd_subset.proto")]) != 0:  # fmt: skip
        return 1
    for name in ("etcd_subset_pb2.py", "etcd_subset_pb2.pyi"):
        path = HERE / name
        path.write_text(HEADER + "# ruff: noqa\n# mypy: ignore-errors\n" + path.read_text())
    # Formatted like the rest of the tree so `ruff format --check` stays clean.
    cmd = [sys.executable, "-m", "ruff", "format", "-q", str(HERE)]
    return subprocess.run(cmd, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
