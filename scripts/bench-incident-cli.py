#!/usr/bin/env python3
"""Operator commands against a large account: `pagerbridge incident list` over N open incidents
(past PagerDuty's 10,000 paging ceiling) and `incident ack` / `incident resolve` of all of them
in bulk requests of 250, against `pagerbridge emulator --no-rate-limit` on loopback.

Usage: scripts/bench-incident-cli.py [BINARY] [INCIDENTS] [RUNS]
Defaults: target/release/pagerbridge, 10250 incidents, 3 runs of the listing.
"""
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import time

binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/pagerbridge"
incidents = int(sys.argv[2]) if len(sys.argv) > 2 else 10250
runs = int(sys.argv[3]) if len(sys.argv) > 3 else 3
ROUTING_KEY = "a1b2c3d4e5f60718293a4b5c6d7e8f90"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


port = free_port()
emulator = subprocess.Popen(
    [binary, "emulator", "--listen", f"127.0.0.1:{port}", "--no-rate-limit"],
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
)
try:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    conn = http.client.HTTPConnection("127.0.0.1", port)
    started = time.perf_counter()
    for n in range(incidents):
        body = json.dumps({
            "routing_key": ROUTING_KEY, "event_action": "trigger", "dedup_key": f"bench-{n}",
            "payload": {"summary": f"bench {n}", "source": "bench", "severity": "info"},
        })
        conn.request("POST", "/v2/enqueue", body, {"Content-Type": "application/json"})
        answer = conn.getresponse()
        answer.read()
        assert answer.status == 202, f"event {n}: HTTP {answer.status}"
    print(f"seeded {incidents} incidents in {time.perf_counter() - started:.1f} s")

    env = dict(os.environ, PAGERDUTY_REST_URL=f"http://127.0.0.1:{port}",
               PAGERDUTY_API_TOKEN="emulator-account-token", PAGERDUTY_FROM="ada@example.com",
               NO_PROXY="127.0.0.1")

    def timed(args, stdin=None):
        start = time.perf_counter()
        out = subprocess.run([binary, *args], input=stdin, capture_output=True, env=env, check=True)
        return time.perf_counter() - start, out.stdout

    lists = []
    for _ in range(runs):
        secs, out = timed(["incident", "list", "--json"])
        listed = len(json.loads(out))
        assert listed == incidents, f"{listed} of {incidents} open incidents listed"
        lists.append(secs)
    ids = "\n".join(i["id"] for i in json.loads(out)).encode()
    print(f"incident list --json, {incidents} incidents: median {statistics.median(lists):.2f} s "
          f"(runs: {', '.join(f'{s:.2f}' for s in lists)})")
    secs, _ = timed(["incident", "ack", "-", "--quiet"], ids)
    print(f"incident ack of {incidents} ids ({-(-incidents // 250)} bulk requests): {secs:.2f} s")
    secs, _ = timed(["incident", "resolve", "-", "--quiet"], ids)
    print(f"incident resolve of {incidents} ids: {secs:.2f} s")
    secs, out = timed(["incident", "list", "--json"])
    assert json.loads(out) == [], "nothing left open"
finally:
    emulator.kill()
    emulator.wait()
