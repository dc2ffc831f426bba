"""One TCP transfer between two network namespaces, for tests and nothing else.

On the userspace datapath a broken checksum/segmentation offload lets ping
through and silently stalls TCP, so connectivity tests send a payload big
enough to need many segments. The server listens on an ephemeral port and
prints it, counts what arrives and answers with the count; the client sends,
waits for that answer and prints the count and the seconds it took.
"""

from __future__ import annotations

import subprocess
import sys

from sandbox import netns

_SERVER = """
import socket
s = socket.socket(); s.bind(("0.0.0.0", 0)); s.listen(1)
print(s.getsockname()[1], flush=True)
c, _ = s.accept(); n = 0
while True:
    b = c.recv(65536)
    if not b: break
    n += len(b)
c.sendall(str(n).encode()); c.close()
"""
_CLIENT = """
import socket, sys, time
ip, port, size, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
c = socket.create_connection((ip, port), timeout=timeout)
t = time.monotonic(); c.sendall(b"x" * size); c.shutdown(socket.SHUT_WR)
count = c.recv(100).decode()
print(count, time.monotonic() - t)
"""


def tcp_transfer(
    server_netns: str, client_netns: str, server_ip: str, size: int, *, timeout: float = 30.0
) -> tuple[int, float]:
    """Send `size` bytes; return (bytes the server counted, seconds). (0, 0.0) on failure."""
    server = subprocess.Popen(
        netns.command(server_netns, [sys.executable, "-c", _SERVER]),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = server.stdout.readline().strip()  # printed once listening
        client = netns.run(
            client_netns,
            [sys.executable, "-c", _CLIENT, server_ip, port, str(size), str(timeout)],
            check=False,
            timeout=timeout * 2,
        )
        if client.returncode != 0 or not client.stdout.strip():
            return 0, 0.0
        count, seconds = client.stdout.split()
        return int(count or 0), float(seconds)
    finally:
        server.kill()
        server.wait()
