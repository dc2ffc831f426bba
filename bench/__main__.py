"""`python -m bench [--quick] [NAME ...]`: run benchmarks, print the report.

Each benchmark is a module bench/<name>.py with `run(quick: bool) -> list[Row]`.
They run one after another (never in parallel: they would measure each
other). The report is printed and written to bench/results/report-<time>.md.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time
import traceback
from pathlib import Path

from bench.report import Row, to_markdown

# In report order. Missing modules are reported, not fatal.
BENCHMARKS = ("ipam", "cni", "kubeapi", "controller", "services", "sandbox", "e2e", "workloads")
RESULTS = Path(__file__).parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help=f"subset of {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (smoke run)")
    args = parser.parse_args(argv)
    names = args.names or list(BENCHMARKS)
    rows: list[Row] = []
    failed = []
    for name in names:
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"bench.{name}":
                raise
            print(f"bench: no benchmark {name!r} yet", file=sys.stderr)
            continue
        started = time.monotonic()
        print(f"bench: running {name} ...", file=sys.stderr, flush=True)
        try:
            rows.extend(module.run(quick=args.quick))
        except Exception:
            traceback.print_exc()
            failed.append(name)
            rows.append(Row(section=name, case="(failed)", note="see stderr"))
        print(f"bench: {name} took {time.monotonic() - started:.1f} s", file=sys.stderr)
    python = platform.python_version()
    machine = f"{platform.node()}, {platform.machine()}, {os.cpu_count()} CPUs, Python {python}"
    report = (
        to_markdown(rows)
        + f"\nMachine: {machine}. Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.\n"
    )
    print(report)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"report-{time.strftime('%Y%m%d-%H%M%S')}.md"
    out.write_text(report)
    print(f"written to {out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
