"""What an image name stands for on this machine, since nothing is pulled.

Containers run from the host's files, so an image only decides what a
container finds on its PATH. The busybox image puts every applet on PATH
(`httpd`, `nc`, `wget`, `nslookup`...), and people write `-- httpd -f -p 80`
accordingly; Debian's busybox-static ships only `/usr/bin/busybox`, so for
busybox images the sandbox makes a directory of applet links once and puts
it first on the container's PATH. Other images see the host's PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

#: Shared by every sandbox on the machine: the links only point at busybox.
APPLETS_DIR = Path("/run/kovn-sandbox/busybox-applets")


def base_name(image: str) -> str:
    """`docker.io/library/busybox:1.36@sha256:...` -> `busybox`."""
    return image.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0]


def path_prefix(image: str) -> str:
    """Directories an image adds in front of PATH ("" for none)."""
    if base_name(image) != "busybox":
        return ""
    return str(ensure_applets()) if shutil.which("busybox") else ""


def ensure_applets(directory: Path = APPLETS_DIR) -> Path:
    """A directory with one link per busybox applet (made once, idempotent)."""
    marker = directory / "busybox"
    if marker.exists():
        return directory
    busybox = shutil.which("busybox")
    if busybox is None:
        return directory
    tmp = directory.with_name(f"{directory.name}.{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    applets = subprocess.run(
        [busybox, "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in [*applets, "busybox"]:
        link = tmp / applet
        if not link.exists():
            link.symlink_to(busybox)
    try:
        tmp.rename(directory)  # atomic: a concurrent maker loses the race harmlessly
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory
