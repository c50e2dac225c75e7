"""pagerbridge actions for StackStorm: one Python action class, four action metadata files.

The pack's configuration (/opt/stackstorm/configs/pagerbridge.yaml) gives `url` (the daemon's
address) and `api_token` (an [[api.tokens]] token with the admin scope). Only the standard
library is used, so the pack needs no virtualenv requirements.
"""

import json
import urllib.error
import urllib.parse
import urllib.request

try:
    from st2common.runners.base_action import Action
except ImportError:  # outside StackStorm (a shell, the tests): the same contract, minimal
    class Action(object):
        def __init__(self, config=None):
            self.config = config or {}


class PagerbridgeAction(Action):
    def run(self, operation, ids=None, from_email=None, statuses=None, title=None,
            service=None, urgency=None):
        if operation == "list":
            query = urllib.parse.urlencode({"status": statuses or "triggered,acknowledged"})
            return self._call("GET", "/api/v1/incidents?" + query)
        if operation == "create":
            body = {"title": title, "service": service}
            if urgency:
                body["urgency"] = urgency
            if from_email:
                body["from"] = from_email
            return self._call("POST", "/api/v1/incidents", body)
        if operation in ("acknowledge", "resolve"):
            # Chat users type "Q1ABC Q2DEF" or "Q1ABC,Q2DEF".
            id_list = [i for i in (ids or "").replace(",", " ").split() if i]
            body = {"ids": id_list, "from": from_email}
            return self._call("POST", "/api/v1/incidents/" + operation, body)
        return (False, {"error": "unknown operation %r" % operation})

    def _call(self, method, path, body=None):
        request = urllib.request.Request(
            self.config["url"].rstrip("/") + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={
                "Authorization": "Bearer " + self.config["api_token"],
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                # (success, result): StackStorm marks the execution failed on False.
                return (True, json.load(answer))
        except urllib.error.HTTPError as e:
            # pagerbridge's errors are JSON naming the problem; a 207 (some ids failed) is not
            # an HTTPError, its "failed" list is in the result.
            try:
                return (False, json.load(e))
            except ValueError:
                return (False, {"error": "HTTP %d from pagerbridge" % e.code})
