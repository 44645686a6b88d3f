#!/usr/bin/env python3
"""Prometheus Alertmanager -> relaybus: one relaybus event per alert.

Alertmanager's webhook posts its own JSON (a group of alerts, ``version: "4"``), so
this small bridge receives it and posts each alert to ``POST /v1/integrations/events``:

- ``dedupe_key``: the alert's ``fingerprint`` (one task per alert, however often
  Alertmanager repeats it; a repeat raises the task's ``occurrence_count``);
- ``status``: ``resolved`` when the alert is resolved, else ``open``;
- ``title``: ``alertname`` (and ``instance``) with the ``summary`` annotation;
  ``body``: the ``description`` annotation; ``external_url``: the ``generatorURL``;
  ``metadata``: the alert's labels; ``priority`` from the ``severity`` label.

The bridge keeps no secret: it forwards the ``Authorization`` header Alertmanager
sends (``http_config.authorization`` in alertmanager.yml holds the integration's
token), so a request without a valid token is refused by relaybus itself.

    RELAYBUS_URL=http://127.0.0.1:4850 python3 alertmanager_bridge.py --port 9099

Answers 200 when every alert was taken, 503 when relaybus could not be reached or
asked to slow down (Alertmanager then retries the whole group; relaybus dedupes on the
fingerprint), and relaybus's own 4xx status when it refused an alert (a bad token, a
target the integration may not address). Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: Largest Alertmanager payload accepted (bytes).
MAX_BODY = 4 << 20
#: Seconds relaybus has to answer one event.
TIMEOUT = 10.0
#: relaybus priorities for Alertmanager's customary ``severity`` labels.
PRIORITY = {"critical": "high", "page": "high", "warning": "normal", "info": "low"}


def event_of(alert: dict[str, Any], target: str | None, channel: str | None) -> dict[str, Any]:
    """The relaybus event for one Alertmanager ``alert``."""
    labels: dict[str, str] = alert.get("labels") or {}
    notes: dict[str, str] = alert.get("annotations") or {}
    name = labels.get("alertname", "alert")
    where = f" on {labels['instance']}" if labels.get("instance") else ""
    summary = notes.get("summary")
    title = f"{name}{where}: {summary}" if summary else f"{name}{where}"
    body = notes.get("description") or summary
    event: dict[str, Any] = {
        "source": "alertmanager",
        "title": title[:500],
        "dedupe_key": alert["fingerprint"],
        "status": "resolved" if alert.get("status") == "resolved" else "open",
        "metadata": labels,
        "priority": PRIORITY.get(labels.get("severity", ""), "normal"),
    }
    if body:
        event["body"] = body
    if alert.get("generatorURL"):
        event["external_url"] = alert["generatorURL"]
    if target:
        event["target"] = target
    if channel:
        event["channel"] = channel
    return event


def post_event(base: str, authorization: str, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST ``event`` to relaybus; returns its status and JSON answer (status 0: no
    answer, with ``{"detail": why}``)."""
    request = urllib.request.Request(
        f"{base.rstrip('/')}/v1/integrations/events",
        data=json.dumps(event).encode("utf-8"),
        headers={"Content-Type": "application/json", "Authorization": authorization},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as refused:
        try:
            detail = json.loads(refused.read() or b"{}")
        except ValueError:
            detail = {}
        detail.setdefault("detail", refused.reason)
        if refused.headers.get("Retry-After"):
            detail["retry_after"] = refused.headers["Retry-After"]
        return refused.code, detail
    except (urllib.error.URLError, TimeoutError, ConnectionError) as down:
        return 0, {"detail": f"relaybus did not answer: {down}"}


class Bridge(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], relay: str, target: str | None, channel: str | None
    ) -> None:
        super().__init__(address, AlertmanagerHandler)
        self.relay, self.target, self.channel = relay, target, channel


class AlertmanagerHandler(BaseHTTPRequestHandler):
    server: Bridge

    def do_POST(self) -> None:
        authorization = self.headers.get("Authorization")
        if not authorization:
            self.answer(401, {"detail": "no Authorization header: set http_config.authorization"})
            return
        length = self.headers.get("Content-Length", "")
        if not length.isdigit() or int(length) > MAX_BODY:
            self.answer(413, {"detail": "a body of known length up to 4 MiB is needed"})
            return
        try:
            payload = json.loads(self.rfile.read(int(length)))
            alerts = payload["alerts"]
            events = [event_of(a, self.server.target, self.server.channel) for a in alerts]
        except (ValueError, KeyError, TypeError, AttributeError):
            self.answer(400, {"detail": "not an Alertmanager webhook payload"})
            return
        results: list[dict[str, Any]] = []
        status = 200
        for event in events:
            code, answer = post_event(self.server.relay, authorization, event)
            result = {"fingerprint": event["dedupe_key"], "status": code}
            if 200 <= code < 300:
                result["outcome"] = answer.get("outcome")
                result["task"] = (answer.get("task") or {}).get("id")
            elif code == 404 and event["status"] == "resolved":
                result["outcome"] = "ignored"  # nothing was ever opened for it
            else:
                result["error"] = answer.get("detail")
                print(
                    f"relaybus refused {event['dedupe_key']}: {code} {result['error']}",
                    file=sys.stderr,
                    flush=True,
                )
                if code == 0 or code == 429 or code >= 500:
                    results.append(result)
                    headers = {"Retry-After": str(answer.get("retry_after", 30))}
                    self.answer(503, {"results": results}, headers)
                    return  # Alertmanager retries the group later
                status = code if status == 200 else status
            results.append(result)
        self.answer(status, {"results": results})

    def answer(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # refusals are printed; successes are quiet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9099, help="0 picks a free port")
    parser.add_argument(
        "--target",
        default=os.environ.get("RELAYBUS_TARGET"),
        help="target expression (default: the integration's first allowed)",
    )
    parser.add_argument("--channel", default=os.environ.get("RELAYBUS_CHANNEL"))
    args = parser.parse_args()
    relay = os.environ.get("RELAYBUS_URL", "http://127.0.0.1:4850")
    server = Bridge((args.host, args.port), relay, args.target, args.channel)
    host, port = args.host, server.server_port
    print(f"listening on http://{host}:{port}/ -> {relay}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
