#!/usr/bin/env python3
"""A Slack slash command (/pd) for pagerbridge: standard library only.

Slack posts the command to this runner; the runner checks Slack's signature, acts through
pagerbridge's API as the Slack user's PagerDuty login, and answers in the channel.

    /pd list [STATUS]        open incidents (or triggered, acknowledged, resolved, all)
    /pd ack ID...            acknowledge, as you
    /pd resolve ID...        resolve, as you
    /pd note ID TEXT         add a note, as you

Environment:
    SLACK_SIGNING_SECRET     the Slack app's signing secret (Basic Information page)
    PAGERBRIDGE_URL          the daemon, e.g. http://pagerbridge.example.com:8080
    PAGERBRIDGE_API_TOKEN    an [[api.tokens]] token with the admin scope
    PAGERDUTY_EMAIL_DOMAIN   Slack user "jane" acts as jane@<domain> in PagerDuty
    RUNNER_LISTEN            host:port to listen on (default 127.0.0.1:3000)
"""

import hashlib
import hmac
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_SKEW = 300  # seconds: Slack's advice against replayed requests


def signature_ok(secret, headers, body):
    timestamp = headers.get("X-Slack-Request-Timestamp", "")
    given = headers.get("X-Slack-Signature", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > MAX_SKEW:
        return False
    base = b"v0:" + timestamp.encode() + b":" + body
    wanted = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return hmac.compare_digest(wanted, given)


def call(method, path, body=None):
    request = urllib.request.Request(
        os.environ["PAGERBRIDGE_URL"].rstrip("/") + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={
            "Authorization": "Bearer " + os.environ["PAGERBRIDGE_API_TOKEN"],
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return json.load(answer)
    except urllib.error.HTTPError as e:
        try:
            return {"error": json.load(e).get("error", "HTTP %d" % e.code)}
        except ValueError:
            return {"error": "HTTP %d from pagerbridge" % e.code}


def command(text, user_name):
    words = text.split()
    if not words:
        return "usage: /pd list [status] | ack ID... | resolve ID... | note ID TEXT"
    verb, args = words[0], words[1:]
    user = user_name + "@" + os.environ["PAGERDUTY_EMAIL_DOMAIN"]
    if verb == "list":
        status = args[0] if args else "open"
        answer = call("GET", "/api/v1/incidents?" + urllib.parse.urlencode({"status": status}))
        if "error" in answer:
            return "pagerbridge: " + answer["error"]
        lines = ["%d %s incident(s)" % (answer["count"], status)]
        for i in answer["incidents"][:20]:
            lines.append("%s  %s  %s" % (i["id"], i["status"], i.get("title", "")))
        return "\n".join(lines)
    if verb in ("ack", "resolve") and args:
        action = "acknowledge" if verb == "ack" else "resolve"
        answer = call("POST", "/api/v1/incidents/" + action, {"ids": args, "from": user})
        if "error" in answer:
            return "pagerbridge: " + answer["error"]
        lines = ["%s %d incident(s) as %s" % (action + "d", len(answer["updated"]), user)]
        for f in answer["failed"]:
            lines.append("%s: %s" % (f["id"], f["error"]))
        return "\n".join(lines)
    if verb == "note" and len(args) >= 2:
        answer = call("POST", "/api/v1/incidents/%s/notes" % args[0],
                      {"content": " ".join(args[1:]), "from": user})
        if "error" in answer:
            return "pagerbridge: " + answer["error"]
        return "note added to %s" % args[0]
    return "usage: /pd list [status] | ack ID... | resolve ID... | note ID TEXT"


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if not signature_ok(os.environ["SLACK_SIGNING_SECRET"], self.headers, body):
            self.answer(401, {"text": "bad Slack signature"})
            return
        form = urllib.parse.parse_qs(body.decode(), keep_blank_values=True)
        text = form.get("text", [""])[0]
        user_name = form.get("user_name", [""])[0]
        self.answer(200, {"response_type": "in_channel", "text": command(text, user_name)})

    def answer(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        sys.stderr.write("slack-runner: " + fmt % args + "\n")


if __name__ == "__main__":
    host, port = os.environ.get("RUNNER_LISTEN", "127.0.0.1:3000").rsplit(":", 1)
    server = ThreadingHTTPServer((host, int(port)), Handler)
    print("listening on %s:%d" % server.server_address, flush=True)
    server.serve_forever()
