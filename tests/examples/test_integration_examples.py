"""The integration examples (``examples/integrations``) and the snippets of
docs/integrations.md work as written: the callback receiver, a real process, takes a
correctly signed callback once and refuses a bad one; the shell script, the GitHub
Actions steps and the Alertmanager bridge post to a real ``relaybus serve`` and make,
repeat and resolve tasks, whose signed callbacks reach the receiver.

Signatures here are computed by this module from the contract (HMAC-SHA256 over
``f"{t}." + body``), not by relaybus, so the receiver is checked against the
documented scheme."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import importlib.util
import json
import os
import py_compile
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import yaml

from relaybus.service import Service
from tests.support.env import clean_environ
from tests.support.live import UNUSED_TLS

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "integrations"
DOC = ROOT / "docs" / "integrations.md"
#: Seconds to wait for a process to start, answer or stop before calling it hung.
HUNG = 30.0
SECRET = "whsec_example-tests"
TOKEN = "rbi_example-tests-token"
ADMIN = "example-tests-admin"

needs_jq = pytest.mark.skipif(shutil.which("jq") is None, reason="the examples build JSON with jq")


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """An ``X-Relaybus-Signature`` value, computed as docs/integrations.md says."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode("utf-8"), f"{t}.".encode() + body, hashlib.sha256)
    return f"t={t},v1={mac.hexdigest()}"


class Running:
    """A process started by a test; its output lines (stdout and stderr) arrive on a
    queue, read by a thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, want: Callable[[str], bool], what: str) -> str:
        """The next output line that ``want`` accepts (waits up to :data:`HUNG` s).

        Raises:
            AssertionError: the process ended, or printed no such line in time.
        """
        deadline = time.monotonic() + HUNG
        while True:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0))
            except queue.Empty:
                raise AssertionError(f"no {what} in {HUNG} s:\n" + "\n".join(self.seen)) from None
            if line is None:
                self.lines.put(None)
                raise AssertionError(f"exited without {what}:\n" + "\n".join(self.seen))
            self.seen.append(line)
            if want(line):
                return line

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(HUNG)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(HUNG)
        self._reader.join(HUNG)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@contextlib.contextmanager
def running(command: list[str], env: dict[str, str], cwd: Path) -> Iterator[Running]:
    """Run ``command`` for the block (stopped with SIGINT, by its pid, after it)."""
    proc = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        encoding="utf-8",
    )
    process = Running(proc)
    try:
        yield process
    finally:
        process.stop()


@contextlib.contextmanager
def example_server(
    script: str, tmp_path: Path, env: dict[str, str] | None = None
) -> Iterator[tuple[str, Running]]:
    """An example HTTP server (``listening on URL``) on a free loopback port; yields its
    URL and the process."""
    environ = {**clean_environ(), **(env or {})}
    command = [sys.executable, str(EXAMPLES / script), "--port", "0"]
    with running(command, environ, tmp_path) as process:
        line = process.expect(lambda s: s.startswith("listening on "), "listening line")
        yield line.split()[2].rstrip("/"), process


def containing(text: str) -> Callable[[str], bool]:
    """A test of an output line: whether it contains ``text``."""
    return lambda line: text in line


def load_example(name: str) -> ModuleType:
    """An example module, imported from its file (they import nothing of relaybus)."""
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the callback receiver -------------------------------------------------------------


def callback(delivery: int, event: str = "task.claimed", task_id: int = 42) -> bytes:
    payload = {
        "event": event,
        "event_id": 1000 + delivery,
        "created_at": "2026-12-04T07:00:00Z",
        "workspace": "default",
        "integration": "ops",
        "task": {"id": task_id, "status": "claimed", "assignee": "ops-bot", "title": "disk"},
    }
    return json.dumps(payload).encode()


def post_callback(
    client: httpx.Client, url: str, body: bytes, signature: str | None, delivery: int
) -> httpx.Response:
    headers = {
        "Content-Type": "application/json",
        "X-Relaybus-Event": "task.claimed",
        "X-Relaybus-Delivery": str(delivery),
    }
    if signature is not None:
        headers["X-Relaybus-Signature"] = signature
    return client.post(url, content=body, headers=headers)


def test_callback_receiver_accepts_a_signed_callback_once_per_delivery(tmp_path: Path) -> None:
    env = {"RELAYBUS_CALLBACK_SECRET": SECRET}
    with (
        example_server("callback_receiver.py", tmp_path, env) as (url, receiver),
        httpx.Client(timeout=HUNG, verify=UNUSED_TLS) as client,
    ):
        body = callback(17)
        first = post_callback(client, url, body, sign(SECRET, body), 17)
        again = post_callback(client, url, body, sign(SECRET, body), 17)  # at least once
        other = callback(18, "task.updated")
        # Several v1 values (a secret being rotated): one that matches is enough.
        rotating = sign(SECRET, other) + ",v1=" + "0" * 64
        third = post_callback(client, url, other, rotating, 18)

        assert (first.status_code, again.status_code, third.status_code) == (204, 204, 204)
        printed = receiver.expect(lambda s: s.startswith("delivery 18 "), "delivery 18")
        assert "task.updated task 42" in printed
        handled = [s for s in receiver.seen if s.startswith("delivery ")]
        assert handled == [
            "delivery 17 task.claimed task 42 status=claimed assignee=ops-bot "
            "occurrences=None 'disk'",
            printed,
        ]


def test_callback_receiver_refuses_a_bad_stale_or_missing_signature(tmp_path: Path) -> None:
    env = {"RELAYBUS_CALLBACK_SECRET": SECRET}
    body = callback(20)
    now = int(time.time())
    refused = {
        "another secret": sign("whsec_other", body),
        "a changed body": sign(SECRET, body.replace(b"claimed", b"done!!!")),
        "too old": sign(SECRET, body, now - 400),
        "from the future": sign(SECRET, body, now + 400),
        "no v1": f"t={now}",
        "no timestamp": sign(SECRET, body).split(",")[1],
        "garbage": "sha256=abc",
    }
    with (
        example_server("callback_receiver.py", tmp_path, env) as (url, receiver),
        httpx.Client(timeout=HUNG, verify=UNUSED_TLS) as client,
    ):
        answers = {
            why: post_callback(client, url, body, signature, 20).status_code
            for why, signature in refused.items()
        }
        missing = post_callback(client, url, body, None, 20).status_code
        # A refused delivery is not remembered: signed properly, it is handled.
        good = post_callback(client, url, body, sign(SECRET, body), 20).status_code

        assert answers == dict.fromkeys(refused, 400)
        assert (missing, good) == (400, 204)
        receiver.expect(lambda s: s.startswith("delivery 20 "), "delivery 20")


def test_callback_receiver_needs_its_secret(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "callback_receiver.py"), "--port", "0"],
        env=clean_environ(),
        capture_output=True,
        encoding="utf-8",
        timeout=HUNG,
    )
    assert done.returncode == 2
    assert "RELAYBUS_CALLBACK_SECRET" in done.stderr


# -- the files themselves ---------------------------------------------------------------


def test_python_examples_compile_and_the_shell_script_parses(tmp_path: Path) -> None:
    for script in ("callback_receiver.py", "alertmanager_bridge.py"):
        py_compile.compile(str(EXAMPLES / script), cfile=str(tmp_path / f"{script}c"), doraise=True)
    checked = subprocess.run(
        ["bash", "-n", str(EXAMPLES / "ops-alert.sh")], capture_output=True, timeout=HUNG
    )
    assert checked.returncode == 0, checked.stderr
    assert os.access(EXAMPLES / "ops-alert.sh", os.X_OK)
    for script in ("callback_receiver.py", "alertmanager_bridge.py"):
        source = (EXAMPLES / script).read_text(encoding="utf-8")
        assert not re.search(r"^\s*(from|import) relaybus", source, re.M)  # copyable


def test_alertmanager_config_sends_every_alert_to_the_bridge_with_the_token() -> None:
    config = yaml.safe_load((EXAMPLES / "alertmanager.yml").read_text(encoding="utf-8"))

    receivers = {r["name"]: r for r in config["receivers"]}
    (webhook,) = receivers[config["route"]["receiver"]]["webhook_configs"]
    assert webhook["url"].startswith("http://127.0.0.1:9099/")  # the bridge's default port
    assert webhook["send_resolved"] is True
    authorization = webhook["http_config"]["authorization"]
    assert authorization["type"] == "Bearer" and authorization["credentials_file"]


def workflow_steps() -> dict[str, dict[str, Any]]:
    workflow = yaml.safe_load((EXAMPLES / "github-actions.yml").read_text(encoding="utf-8"))
    assert workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    (job,) = workflow["jobs"].values()
    return {step["name"]: step for step in job["steps"] if "name" in step}


def test_github_actions_step_reports_a_failure_with_the_token_from_a_secret() -> None:
    steps = workflow_steps()

    report = steps["Report the failure to relaybus"]
    assert report["if"] == "failure()"
    token = report["env"]["RELAYBUS_INTEGRATION_TOKEN"]
    assert token == "${{ secrets.RELAYBUS_INTEGRATION_TOKEN }}"
    assert "/v1/integrations/events" in report["run"] and "curl" in report["run"]
    assert "${{" not in report["run"]  # the context reaches the script as variables only
    assert steps["Close the CI task in relaybus"]["if"] == "success()"


def test_alertmanager_bridge_maps_an_alert_to_one_event() -> None:
    bridge = load_example("alertmanager_bridge")
    alert = {
        "status": "firing",
        "labels": {"alertname": "HighLatency", "instance": "api-1:9100", "severity": "critical"},
        "annotations": {"summary": "p99 above 2 s", "description": "p99 of api-1 is 2.4 s"},
        "startsAt": "2026-12-04T06:50:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=latency",
        "fingerprint": "5f1a2b3c4d5e6f70",
    }

    event = bridge.event_of(alert, None, "alerts")
    resolved = bridge.event_of({**alert, "status": "resolved", "generatorURL": ""}, "cap:db", None)

    assert event == {
        "source": "alertmanager",
        "title": "HighLatency on api-1:9100: p99 above 2 s",
        "body": "p99 of api-1 is 2.4 s",
        "dedupe_key": "5f1a2b3c4d5e6f70",
        "status": "open",
        "metadata": alert["labels"],
        "priority": "high",
        "external_url": "http://prometheus:9090/graph?g0.expr=latency",
        "channel": "alerts",
    }
    assert resolved["status"] == "resolved" and resolved["target"] == "cap:db"
    assert "external_url" not in resolved and "channel" not in resolved


# -- the docs' verification snippets ----------------------------------------------------


def doc_block(language: str, containing: str) -> str:
    """The code block of docs/integrations.md in ``language`` that contains ``containing``."""
    blocks = re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    (found,) = [str(b) for b in blocks if containing in b]
    return found


def test_the_docs_python_snippet_verifies_as_the_scheme_says() -> None:
    scope: dict[str, Any] = {}
    exec(doc_block("python", "def verify_callback"), scope)  # the docs' own code
    verify = scope["verify_callback"]
    body = callback(1)
    now = int(time.time())

    assert verify(SECRET, sign(SECRET, body), body) is True
    assert verify(SECRET, sign(SECRET, body) + ",v1=" + "f" * 64, body) is True
    assert verify(SECRET, sign(SECRET, body + b" "), body) is False
    assert verify(SECRET, sign("whsec_other", body), body) is False
    assert verify(SECRET, sign(SECRET, body, now - 400), body) is False
    assert verify(SECRET, f"t={now}", body) is False


@pytest.mark.skipif(shutil.which("openssl") is None, reason="the snippet uses openssl")
def test_the_docs_openssl_snippet_verifies_as_the_scheme_says(tmp_path: Path) -> None:
    script = doc_block("bash", "openssl dgst")
    body = callback(2)
    (tmp_path / "body.json").write_bytes(body)

    def run(signature: str) -> str:
        env = {**clean_environ(), "SIGNATURE": signature, "RELAYBUS_CALLBACK_SECRET": SECRET}
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            encoding="utf-8",
            timeout=HUNG,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert run(sign(SECRET, body)) == "valid"
    assert run(sign("whsec_other", body)) == "invalid"
    assert run(sign(SECRET, body, int(time.time()) - 400)) == "invalid"


def test_the_docs_declared_integrations_are_what_the_server_applies(service: Service) -> None:
    block = doc_block("bash", "export RELAYBUS_INTEGRATIONS=")
    declared = json.loads(block.split("'")[1])

    names = service.declare_integrations(declared)

    assert names == ["ops", "support-desk"]
    ops = service.get_integration("ops")
    assert (ops.targets, ops.channels, ops.rate_limit) == (["cap:ops"], ["alerts"], 60)
    assert ops.callback_url == "https://ops.example/relaybus/callback"
    assert service.get_integration("support-desk").scopes == ["tasks:create"]


# -- against a real relaybus serve ------------------------------------------------------


class Relay:
    """A running ``relaybus serve`` with the integration ``ops`` declared
    (``RELAYBUS_INTEGRATIONS``), its callbacks going to ``callback_url``."""

    def __init__(self, url: str, process: Running) -> None:
        self.url = url
        self.process = process
        self.http = httpx.Client(base_url=url, timeout=HUNG, verify=UNUSED_TLS)

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = self.http.request(
            method, path, headers={"Authorization": f"Bearer {ADMIN}"}, **kwargs
        )
        assert answer.is_success, answer.text
        return answer.json()


@contextlib.contextmanager
def relay_server(tmp_path: Path, callback_url: str) -> Iterator[Relay]:
    declared = [
        {
            "name": "ops",
            "token": TOKEN,
            "scopes": ["tasks:create", "tasks:read"],
            "targets": ["cap:ops"],
            "channels": ["alerts"],
            "callbackUrl": callback_url,
            "secret": SECRET,
        }
    ]
    env = {
        **clean_environ(),
        "RELAYBUS_DIR": str(tmp_path / "relay" / ".relay"),
        "RELAYBUS_TOKEN": ADMIN,
        "RELAYBUS_INTEGRATIONS": json.dumps(declared),
    }
    (tmp_path / "relay").mkdir()
    command = [sys.executable, "-m", "relaybus", "serve", "--port", "0"]
    with running(command, env, tmp_path / "relay") as process:
        line = process.expect(lambda s: s.startswith("relaybus: serving "), "serving line")
        process.expect(lambda s: s == "relaybus: integrations declared: ops", "declared line")
        relay = Relay(line.split()[2], process)
        try:
            relay.admin("POST", "/v1/agents", json={"id": "ops-bot", "capabilities": ["ops"]})
            yield relay
        finally:
            relay.http.close()


def script_env(relay: Relay, **values: str) -> dict[str, str]:
    return {
        **clean_environ(),
        "RELAYBUS_URL": relay.url,
        "RELAYBUS_INTEGRATION_TOKEN": TOKEN,
        **values,
    }


def ops_alert(relay: Relay, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EXAMPLES / "ops-alert.sh"), *args],
        env=script_env(relay),
        capture_output=True,
        encoding="utf-8",
        timeout=HUNG,
    )


def run_step(relay: Relay, step: dict[str, Any], **values: str) -> subprocess.CompletedProcess[str]:
    """A workflow step's script as GitHub's runner runs it (``bash -e -o pipefail``),
    with the test's ``values`` for the variables of its ``env``."""
    given = {name: value for name, value in values.items() if name in step["env"]}
    assert set(step["env"]) == {"RELAYBUS_URL", "RELAYBUS_INTEGRATION_TOKEN", *given}
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        env=script_env(relay, **given),
        capture_output=True,
        encoding="utf-8",
        timeout=HUNG,
    )


def alertmanager_payload(status: str, fingerprint: str) -> dict[str, Any]:
    """Alertmanager's webhook body (version 4) with one alert."""
    labels = {"alertname": "HighLatency", "instance": "api-1:9100", "severity": "warning"}
    return {
        "version": "4",
        "groupKey": '{}:{alertname="HighLatency"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "relaybus",
        "groupLabels": {"alertname": "HighLatency"},
        "commonLabels": labels,
        "commonAnnotations": {"summary": "p99 above 2 s"},
        "externalURL": "http://alertmanager:9093",
        "alerts": [
            {
                "status": status,
                "labels": labels,
                "annotations": {"summary": "p99 above 2 s"},
                "startsAt": "2026-12-04T06:50:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph?g0.expr=latency",
                "fingerprint": fingerprint,
            }
        ],
    }


@pytest.mark.slow
@needs_jq
def test_examples_raise_repeat_and_resolve_tasks_on_a_real_server(tmp_path: Path) -> None:
    receiver_env = {"RELAYBUS_CALLBACK_SECRET": SECRET}
    with (
        example_server("callback_receiver.py", tmp_path, receiver_env) as (hook_url, receiver),
        relay_server(tmp_path, f"{hook_url}/relaybus") as relay,
    ):
        # The shell script: raise, repeat, resolve, and a target it may not address.
        created = ops_alert(relay, "-u", "https://grafana.example/d/db", "disk full on db1", "95%")
        repeated = ops_alert(relay, "disk full on db1")
        resolved = ops_alert(relay, "-r", "disk full on db1")
        refused = ops_alert(relay, "-t", "cap:db", "not mine")
        assert created.returncode == 0, created.stderr
        assert created.stdout == "created task 1\n"
        assert repeated.stdout == "repeated task 1 (2 occurrences)\n"
        assert resolved.stdout == "resolved task 1\n"
        assert refused.returncode == 1
        assert "may not address 'cap:db'" in refused.stderr
        task = relay.admin("GET", "/v1/tasks/1")
        assert task["status"] == "done" and task["occurrence_count"] == 2
        assert task["external_url"] == "https://grafana.example/d/db"
        assert (task["integration"], task["source"], task["channel"]) == (
            "ops",
            "ops-alert",
            "alerts",
        )

        # Every change of the task reached the receiver, signed (it refuses anything else).
        for event in ("task.created", "task.repeated", "task.updated"):
            receiver.expect(containing(f" {event} task 1 "), f"{event} of task 1")

        # The GitHub Actions steps: a failure raises, a repeat counts, a green run closes.
        steps = workflow_steps()
        context = {
            "WORKFLOW": "ci",
            "BRANCH": 'feature/"quoted" $(branch)',
            "COMMIT": "0123456789abcdef0123456789abcdef01234567",
            "RUN_URL": "https://github.com/o/r/actions/runs/7",
        }
        report = steps["Report the failure to relaybus"]
        first = run_step(relay, report, **context)
        second = run_step(relay, report, **context)
        closed = run_step(relay, steps["Close the CI task in relaybus"], **context)
        closed_again = run_step(relay, steps["Close the CI task in relaybus"], **context)
        assert first.returncode == 0, first.stderr
        assert json.loads(first.stdout)["outcome"] == "created"
        ci_task = json.loads(second.stdout)["task"]
        assert ci_task["occurrence_count"] == 2
        assert ci_task["title"] == 'CI failed: ci on feature/"quoted" $(branch)'
        assert ci_task["dedupe_key"] == 'ci:ci:feature/"quoted" $(branch)'
        assert ci_task["meta"]["commit"] == context["COMMIT"]
        assert (closed.returncode, closed_again.returncode) == (0, 0)
        assert relay.admin("GET", f"/v1/tasks/{ci_task['id']}")["status"] == "done"

        # The Alertmanager bridge: the token from Alertmanager's header, one event per alert.
        with example_server("alertmanager_bridge.py", tmp_path, {"RELAYBUS_URL": relay.url}) as (
            bridge_url,
            _,
        ):
            bearer = {"Authorization": f"Bearer {TOKEN}"}
            firing = alertmanager_payload("firing", "5f1a2b3c4d5e6f70")
            fired = relay.http.post(f"{bridge_url}/alerts", json=firing, headers=bearer)
            fired_again = relay.http.post(f"{bridge_url}/alerts", json=firing, headers=bearer)
            wrong = relay.http.post(
                f"{bridge_url}/alerts", json=firing, headers={"Authorization": "Bearer nope"}
            )
            none = relay.http.post(f"{bridge_url}/alerts", json=firing)
            over = alertmanager_payload("resolved", "5f1a2b3c4d5e6f70")
            cleared = relay.http.post(f"{bridge_url}/alerts", json=over, headers=bearer)

        assert fired.status_code == 200, fired.text
        (result,) = fired.json()["results"]
        assert result["outcome"] == "created"
        assert fired_again.json()["results"][0]["outcome"] == "repeated"
        assert (wrong.status_code, none.status_code) == (401, 401)
        assert cleared.json()["results"][0]["outcome"] == "resolved"
        alert_task = relay.admin("GET", f"/v1/tasks/{result['task']}")
        assert alert_task["dedupe_key"] == "5f1a2b3c4d5e6f70"
        assert alert_task["external_url"] == "http://prometheus:9090/graph?g0.expr=latency"
        assert alert_task["meta"] == firing["alerts"][0]["labels"]
        assert (alert_task["status"], alert_task["occurrence_count"]) == ("done", 2)

        # The docs' curl examples, as written: an event, and a task opened by the admin.
        docs_env = script_env(relay, RELAYBUS_TOKEN=ADMIN)
        for marker, outcome in (("/v1/integrations/events", "created"), ('/v1/tasks"', None)):
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", doc_block("bash", marker)],
                env=docs_env,
                capture_output=True,
                encoding="utf-8",
                timeout=HUNG,
            )
            assert done.returncode == 0, done.stdout + done.stderr
            answer = json.loads(done.stdout)
            if outcome is not None:
                assert answer["outcome"] == outcome
                assert answer["task"]["meta"] == {"service": "prod-api", "value": 0.084}
            else:
                operator = ("relaybus", "https://tickets.example/OPS-7", {"ticket": "OPS-7"})
                assert (answer["creator"], answer["external_url"], answer["meta"]) == operator

        # The server's own record: every callback delivered, none refused by the receiver.
        deliveries = relay.admin("GET", "/v1/integrations/ops/deliveries", params={"limit": 100})
        assert deliveries and {d["status"] for d in deliveries} <= {"pending", "delivered"}
        assert all(a["status"] in (None, 204) for d in deliveries for a in d["attempt_log"])
