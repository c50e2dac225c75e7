#!/usr/bin/env python3
"""Time from exec to the first answered HTTP request of `pagerbridge emulator`.

Usage: scripts/bench-emulator-startup.py [BINARY] [RUNS]
Default binary: target/release/pagerbridge; default runs: 30.
"""
import http.client
import os
import socket
import statistics
import subprocess
import sys
import time

binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/pagerbridge"
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 30


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_run():
    port = free_port()
    start = time.perf_counter()
    proc = subprocess.Popen(
        [binary, "emulator", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                conn.request("GET", "/services", headers={"Authorization": "Token token=emulator-account-token"})
                if conn.getresponse().status == 200:
                    return time.perf_counter() - start
            except OSError:
                pass
            if proc.poll() is not None:
                raise SystemExit(f"emulator exited with {proc.returncode}")
            if time.perf_counter() - start > 10:
                raise SystemExit("emulator did not answer within 10 s")
            time.sleep(0.001)
    finally:
        proc.terminate()
        proc.wait()


if not os.path.exists(binary):
    raise SystemExit(f"{binary} not found: build it with cargo build --release -p pagerbridge")
times = sorted(one_run() * 1000 for _ in range(runs))
p95 = times[min(len(times) - 1, int(round(0.95 * len(times))) - 1)]
print(f"runs={runs} min={times[0]:.1f}ms median={statistics.median(times):.1f}ms p95={p95:.1f}ms max={times[-1]:.1f}ms")
