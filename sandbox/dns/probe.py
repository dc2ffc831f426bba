"""Ask a DNS server a question from inside a network namespace, with dig.

`kovn sandbox status` uses it to say whether each node's server answers,
and tests use it to check answers from a pod's namespace: the real client
tool, run where a pod's resolver would run.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field

_STATUS = re.compile(r"status: ([A-Z]+)")


@dataclass
class Answer:
    status: str  # NOERROR, NXDOMAIN, REFUSED, SERVFAIL, ... or "TIMEOUT"/"ERROR"
    #: (name, type, data) of the answer section, names without the final dot
    records: list[tuple[str, str, str]] = field(default_factory=list)
    ttls: list[int] = field(default_factory=list)

    def data(self, rtype: str) -> list[str]:
        return sorted(d for _, t, d in self.records if t == rtype)


def dig(
    ns: str | None,
    server: str,
    name: str,
    qtype: str = "A",
    *,
    tcp: bool = False,
    port: int = 53,
    timeout: float = 1.0,
) -> Answer:
    argv = ["dig", f"@{server}", "-p", str(port), name, qtype, "+noall", "+answer",
            "+comments", f"+time={max(1, round(timeout))}", "+tries=1"]  # fmt: skip
    if tcp:
        argv.append("+tcp")
    if qtype == "PTR":
        argv[4:6] = ["-x", name]
    if ns is not None:
        argv = ["ip", "netns", "exec", ns, *argv]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 5)
    m = _STATUS.search(res.stdout)
    if m is None:
        return Answer("TIMEOUT" if "timed out" in res.stdout + res.stderr else "ERROR")
    ans = Answer(m.group(1))
    for line in res.stdout.splitlines():
        if not line or line.startswith(";"):
            continue
        words = line.split(None, 4)
        if len(words) == 5 and words[2] == "IN":
            ans.records.append((words[0].rstrip("."), words[3], words[4].strip()))
            ans.ttls.append(int(words[1]))
    return ans
