"""`kovn`: the one command-line entry point for every kovn component.

    kovn ipam serve [flags]          the IPAM service
    kovn controller serve [flags]    the controller
    kovn dataplane serve [flags]     the node dataplane
    kovn sandbox up|down|status|...  a kovn cluster on this machine

Each component is imported only when asked for, so `kovn sandbox status`
does not pay for loading the controller, and a service's `--help` lists the
flags of that service alone.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

SERVICES = ("ipam", "controller", "dataplane")

USAGE = """usage: kovn <component> ...

components:
  ipam serve [flags]          run the IPAM service
  controller serve [flags]    run the controller
  dataplane serve [flags]     run the node dataplane service
  sandbox <command> ...       run a kovn cluster on this machine (up, down, status, ...)
  version                     print the version

`kovn <component> serve --help` lists a service's flags; each flag can also be
given as an environment variable KOVN_<COMPONENT>_<FLAG> or in --config FILE.
"""


def _entry(module: str) -> Callable[[list[str]], int]:
    main: Callable[[list[str]], int] = importlib.import_module(module).main
    return main


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0 if args else 2
    component, rest = args[0], args[1:]
    if component == "version":
        from importlib.metadata import version

        print(version("kovn"))
        return 0
    if component == "sandbox":
        return _entry("sandbox.cli")(rest)
    if component in SERVICES:
        if not rest or rest[0] != "serve":
            print(f"usage: kovn {component} serve [flags]  (try --help)", file=sys.stderr)
            return 2
        return _entry(f"services.{component}.main")(rest[1:])
    print(f"kovn: unknown component {component!r}\n\n{USAGE}", file=sys.stderr, end="")
    return 2


if __name__ == "__main__":
    sys.exit(main())
