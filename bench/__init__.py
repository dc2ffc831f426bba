"""kovn's benchmarks: `make bench` runs them all and prints one report.

Benchmarks are not tests. Each module measures something a user cares about
(pod-ready latency, CNI ADD/DEL, allocations per second, ...) with repeated
runs, reports medians and p99, and sets it next to a baseline measured in
the same run, because these machines are noisy and absolute numbers from
different runs do not compare.
"""
