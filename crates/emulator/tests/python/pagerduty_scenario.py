"""A scenario for PagerDuty's own Python client (PyPI `pagerduty`, 7.x) against the emulator.

Run by `crates/emulator/tests/python_client.rs` with the venv's python:

    python pagerduty_scenario.py --url http://127.0.0.1:PORT --routing-key KEY \
        --token TOKEN --from ada@example.com

Prints one line per step and, last, a `RESULT {...}` JSON line the Rust test reads to check the
emulator's state. Any failed assertion or unexpected client exception exits non-zero.
"""

import argparse
import json
import os
import sys

import pagerduty

EXPECTED_VERSION = "7.2.0"
ADA_ID = "PADA001"
ADA_NAME = "Ada Operator"
SERVICE_ID = "PDEMO01"


def step(name, detail):
    print(f"ok   {name}: {detail}", flush=True)


def point_at(client, url):
    """Points a client at the emulator.

    The clients' `url` setter refuses anything but https (pagerduty.UrlError), so the base URL
    is set through the attribute the setter writes, `_url`.
    """
    assert client.url.startswith("https://"), client.url
    try:
        client.url = url
    except pagerduty.UrlError:
        pass
    else:
        raise AssertionError("expected the url setter to refuse an http:// URL")
    client._url = url
    assert client.url == url, client.url
    return client


def expect_http_error(status, fn, *args, **kw):
    """Calls fn and returns the pagerduty.HttpError it must raise with `status`."""
    try:
        fn(*args, **kw)
    except pagerduty.HttpError as e:
        got = e.response.status_code
        assert got == status, f"expected HTTP {status}, got {got}: {e}"
        return e
    raise AssertionError(f"expected pagerduty.HttpError with status {status}, got no error")


def one_incident(rest, incident_key):
    found = rest.list_all("incidents", params={"incident_key": incident_key, "date_range": "all"})
    assert len(found) == 1, f"expected one incident with key {incident_key!r}, got {found!r}"
    return found[0]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", default=os.environ.get("PD_EMULATOR_URL"), required=False)
    p.add_argument("--routing-key", default=os.environ.get("PD_ROUTING_KEY"))
    p.add_argument("--token", default=os.environ.get("PD_API_TOKEN"))
    p.add_argument("--from", dest="from_email", default=os.environ.get("PD_FROM_EMAIL"))
    a = p.parse_args()
    for name in ("url", "routing_key", "token", "from_email"):
        assert getattr(a, name), f"missing --{name.replace('_', '-')}"
    url = a.url.rstrip("/")

    assert pagerduty.__version__ == EXPECTED_VERSION, pagerduty.__version__
    step("client", f"pagerduty {pagerduty.__version__} on Python {sys.version.split()[0]}")

    events = point_at(pagerduty.EventsApiV2Client(a.routing_key), url)
    rest = point_at(pagerduty.RestApiV2Client(a.token, default_from=a.from_email), url)
    step("setup", f"EventsApiV2Client and RestApiV2Client pointed at {url} via _url")

    # ---------------------------------------------------------------- Events API v2
    details = {"mount": "/var", "free_bytes": 1024, "tags": ["disk", "db"]}
    key = events.trigger(
        "Disk full on db-1",
        "db-1.example.com",
        dedup_key="py-disk-db-1",
        severity="critical",
        custom_details=details,
    )
    assert key == "py-disk-db-1", key
    inc = one_incident(rest, key)
    assert inc["status"] == "triggered", inc["status"]
    assert inc["title"] == "Disk full on db-1", inc["title"]
    assert inc["service"]["id"] == SERVICE_ID, inc["service"]
    assert inc["urgency"] == "high", inc["urgency"]
    alerts = rest.rget(f"incidents/{inc['id']}/alerts")
    assert len(alerts) == 1, alerts
    assert alerts[0]["alert_key"] == key, alerts[0]
    assert alerts[0]["severity"] == "critical", alerts[0]
    assert alerts[0]["body"]["details"] == details, alerts[0]["body"]
    step("events trigger", f"dedup_key {key} -> incident {inc['id']} (#{inc['incident_number']})")

    again = events.trigger("Disk full on db-1 (still)", "db-1.example.com", dedup_key=key)
    assert again == key, again
    assert one_incident(rest, key)["alert_counts"]["all"] == 1
    step("events dedup", "a second trigger with the same key joined the open alert")

    assert events.acknowledge(key) == key
    inc = rest.rget(f"incidents/{inc['id']}")
    assert inc["status"] == "acknowledged", inc["status"]
    ackers = [x["acknowledger"] for x in inc["acknowledgements"]]
    assert [x["id"] for x in ackers] == [SERVICE_ID], ackers
    step("events acknowledge", f"REST shows {inc['id']} acknowledged by {ackers[0]['summary']}")

    assert events.resolve(key) == key
    inc = rest.rget(f"incidents/{inc['id']}")
    assert inc["status"] == "resolved", inc["status"]
    assert inc.get("resolved_at"), inc
    step("events resolve", f"REST shows {inc['id']} resolved at {inc['resolved_at']}")

    generated = events.trigger("Heartbeat missed", "cron-7", severity="warning")
    assert isinstance(generated, str) and generated, generated
    assert generated != key
    other = events.trigger("Heartbeat missed", "cron-7", severity="warning")
    assert other != generated, "a trigger without dedup_key must get a fresh key"
    gen_incs = [one_incident(rest, generated), one_incident(rest, other)]
    assert gen_incs[0]["id"] != gen_incs[1]["id"]
    for k in (generated, other):
        assert events.resolve(k) == k
    step("events generated key", f"two keyless triggers got keys {generated} and {other}, two incidents")

    e = expect_http_error(
        400, events.trigger, "Bad severity", "db-1", dedup_key="py-bad", severity="fatal"
    )
    body = e.response.json()
    assert body.get("status") == "invalid event", body
    assert body.get("errors"), body
    step("events invalid", f"severity 'fatal' -> 400 {body['errors']}")

    # ---------------------------------------------------------------- REST API v2
    page_keys = [f"py-page-{n}" for n in (1, 2, 3)]
    for n, k in enumerate(page_keys, 1):
        assert events.trigger(f"Paged problem {n}", f"web-{n}", dedup_key=k) == k
    before = rest.api_call_counts.get("GET /incidents", 0)
    triggered = rest.list_all("incidents", params={"statuses[]": ["triggered"]}, page_size=2)
    pages = rest.api_call_counts["GET /incidents"] - before
    keys = sorted(i["incident_key"] for i in triggered)
    assert keys == page_keys, f"expected exactly {page_keys} triggered, got {keys}"
    assert all(i["status"] == "triggered" for i in triggered), triggered
    assert pages == 2, f"expected 2 pages of at most 2, made {pages} requests"
    step("rest list_all", f"{len(triggered)} triggered incidents in {pages} pages of 2")

    target = next(i for i in triggered if i["incident_key"] == "py-page-1")
    updated = rest.rput(
        f"incidents/{target['id']}",
        json={"type": "incident_reference", "status": "acknowledged"},
    )
    assert updated["id"] == target["id"], updated
    assert updated["status"] == "acknowledged", updated["status"]
    assert updated["last_status_change_by"]["id"] == ADA_ID, updated["last_status_change_by"]
    ackers = [x["acknowledger"]["id"] for x in updated["acknowledgements"]]
    assert ackers == [ADA_ID], ackers
    step("rest rput", f"{target['id']} acknowledged by {updated['last_status_change_by']['summary']}")

    content = "Looking into it from the Python client."
    note = rest.rpost(f"incidents/{target['id']}/notes", json={"content": content})
    assert note["content"] == content, note
    assert note["user"]["id"] == ADA_ID, note["user"]
    notes = rest.rget(f"incidents/{target['id']}/notes")
    mine = [n for n in notes if n["id"] == note["id"]]
    assert len(mine) == 1, notes
    assert mine[0]["content"] == content and mine[0]["user"]["summary"] == ADA_NAME, mine[0]
    annotations = list(rest.iter_incident_notes(incident_id=target["id"]))
    assert len(annotations) == 1, annotations
    assert annotations[0]["agent"]["id"] == ADA_ID, annotations[0]
    step("rest notes", f"note {note['id']} by {mine[0]['user']['summary']}, also as annotate_log_entry")

    service = rest.rget(f"services/{SERVICE_ID}")
    assert service["id"] == SERVICE_ID and service["name"] == "Demo Service", service
    assert service["status"] == "critical", service["status"]
    step("rest service", f"{service['name']} status {service['status']}")

    no_from = point_at(pagerduty.RestApiV2Client(a.token), url)
    victim = next(i for i in triggered if i["incident_key"] == "py-page-2")
    assert no_from.rget(f"incidents/{victim['id']}")["status"] == "triggered"
    e = expect_http_error(
        400,
        no_from.rput,
        f"incidents/{victim['id']}",
        json={"type": "incident_reference", "status": "acknowledged"},
    )
    assert not isinstance(e, pagerduty.ServerHttpError), e
    err = e.response.json()["error"]
    assert "From" in err["message"], err
    assert rest.rget(f"incidents/{victim['id']}")["status"] == "triggered"
    step("rest no From", f"PUT without From -> 400 {err['code']} {err['message']!r}; unchanged")

    bad = point_at(pagerduty.RestApiV2Client("not-a-real-token", default_from=a.from_email), url)
    expect_http_error(401, bad.rget, "users")
    step("rest bad token", "401 raised as pagerduty.HttpError without retrying")

    ada = rest.find("users", a.from_email, attribute="email")
    assert ada is not None, "find() did not find the From user"
    assert ada["id"] == ADA_ID and ada["name"] == ADA_NAME, ada
    assert rest.find("users", "nobody@example.com", attribute="email") is None
    step("rest find", f"{a.from_email} -> {ada['id']} {ada['name']}")

    result = {
        "events_key": key,
        "generated_keys": [generated, other],
        "page_keys": page_keys,
        "acked_incident": target["id"],
        "note_id": note["id"],
        "note_content": content,
        "untouched_incident": victim["id"],
    }
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
