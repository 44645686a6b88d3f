"""The dashboard in a real browser: first render over a large store, and an event on
the server to the page showing it.

    .venv/bin/python bench/dashboard.py [--agents 1000] [--messages 10000] [--loads 7]
        [--events 200]

- **First render**: a store seeded with ``--agents`` agents and ``--messages``
  messages (through the service, before the server starts), served by a real
  ``relaybus serve`` process with an admin token. Each load is a fresh browser
  context, signed in beforehand, opening ``/#/agents`` or ``/#/messages`` (in turn);
  the figure is the page's own clock (``performance.now()``, from navigation start)
  when that view has drawn its first page (its ``performance.mark``). The other
  views load once it has. Medians and the worst of ``--loads`` loads of each.
  Target: ≤ 1 s.
- **Event to page**: with the page open on the messages view, this process sends
  ``--events`` messages one at a time over HTTP; the page's MutationObserver notes
  when each message's text enters the page. The figure is that moment minus the
  moment just before the send (both on the system clock: ``time.time()`` here,
  ``performance.timeOrigin + performance.now()`` in the page), so it holds the write,
  the commit, the event log's fan-out, the SSE frame and the render. A second series
  does the same with agents' labels (a PATCH; the agents view fetches the agent
  again on its ``agent.updated`` event), and a third with messages on the events
  view (the feed's row for ``message.sent``). Targets: p50 ≤ 100 ms, p99 ≤ 300 ms.

Debian's ``chromium`` is driven by Playwright (``RELAYBUS_TEST_CHROMIUM`` or
``chromium`` on the PATH); the server listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import announced_server, percentile  # noqa: E402

TOKEN = "bench-dashboard-token"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: The views whose first draw is timed; each sets ``performance.mark("relaybus:VIEW-rendered")``
#: when its first page has drawn (see views/*.js).
FIRST_VIEWS = ("agents", "messages")
#: Each event-to-page series: the view it watches (a message is sent, or a label set).
SERIES = {"message": "messages", "label": "agents", "feed": "events"}
#: Milliseconds to wait for anything in the page.
WAIT_MS = 60_000


def seed(folder: Path, agents: int, messages: int) -> None:
    """``agents`` agents (a quarter tagged ``review``) and ``messages`` messages between
    them, in the SQLite store at ``folder``, written through the service."""
    from relaybus.service import Service
    from relaybus.settings import Settings
    from relaybus.store import open_store

    store = open_store(Settings(dir=folder))
    try:
        service = Service(store)
        names = [f"agent-{i:04d}" for i in range(agents)]
        for i, name in enumerate(names):
            tags = ["review"] if i % 4 == 0 else ["build"]
            service.register(name, label=f"Agent {i}", tags=tags, capabilities=["python"])
        batch = 100
        for start in range(0, messages, batch):
            sender = names[(start // batch) % agents]
            others = [name for name in names if name != sender]
            items = [
                {
                    "to": others[(start + k) % len(others)],
                    "body": f"message {start + k}: the build of PR {start + k} is green",
                }
                for k in range(min(batch, messages - start))
            ]
            service.send_many(sender, items)
    finally:
        store.close()


def launch(playwright: Any) -> Any:
    executable = os.environ.get("RELAYBUS_TEST_CHROMIUM") or shutil.which("chromium")
    if executable is None:
        sys.exit("bench/dashboard.py needs Debian's chromium (apt-get install chromium)")
    return playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)


def first_render(browser: Any, url: str, view: str) -> float:
    """Milliseconds from navigation start to the first draw of ``view`` (agents or
    messages), opened first, in a fresh context signed in beforehand."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        context.add_init_script(f"localStorage.setItem('relaybus.token', '{TOKEN}')")
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.goto(f"{url}/#/{view}")
        mark = f"relaybus:{view}-rendered"
        page.wait_for_function(f"performance.getEntriesByName('{mark}').length", polling=50)
        return float(page.evaluate(f"performance.getEntriesByName('{mark}')[0].startTime"))
    finally:
        context.close()


WATCH = """() => {
  window.__seen = new Map();
  const note = (node) => {
    const text = node.textContent || "";
    for (const match of text.matchAll(/bench-(\\d+)-(\\d+)/g)) {
      if (!window.__seen.has(match[0])) {
        window.__seen.set(match[0], performance.timeOrigin + performance.now());
      }
    }
  };
  new MutationObserver((records) => {
    for (const record of records) {
      for (const node of record.addedNodes) note(node);
      if (record.type === "characterData") note(record.target);
    }
  }).observe(document.body, { childList: true, subtree: true, characterData: true });
}"""


def event_to_page(browser: Any, url: str, count: int, kind: str) -> list[float]:
    """Milliseconds from just before each of ``count`` writes to its text in the page:
    ``kind`` "message" (a send, on the messages view), "feed" (a send, events view) or
    "label" (a PATCH, agents view)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    view = SERIES[kind]
    samples: list[float] = []
    try:
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.goto(f"{url}/#token={TOKEN}")
        mark = "relaybus:agents-rendered"
        page.wait_for_function(f"performance.getEntriesByName('{mark}').length", polling=50)
        page.evaluate(f"location.hash = '#/{view}'")
        page.evaluate(WATCH)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
            for i in range(count):
                marker = f"bench-{os.getpid()}-{i}"
                sent = time.time() * 1000
                if kind != "label":
                    answer = http.post(
                        "/v1/messages",
                        json={"sender": "agent-0001", "to": "agent-0000", "body": marker},
                    )
                else:  # agent-0000 sorts first: its row is in view
                    answer = http.patch("/v1/agents/agent-0000", json={"label": marker})
                answer.raise_for_status()
                page.wait_for_function(f"window.__seen.has('{marker}')", polling="raf")
                shown = page.evaluate(f"window.__seen.get('{marker}')")
                samples.append(shown - sent)
    finally:
        context.close()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--loads", type=int, default=7, help="first renders to time")
    parser.add_argument("--events", type=int, default=200, help="writes per series")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="relaybus-bench-dashboard-") as tmp:
        folder = Path(tmp) / ".relay"
        began = time.monotonic()
        seed(folder, args.agents, args.messages)
        print(
            f"seeded {args.agents:,} agents and {args.messages:,} messages "
            f"in {time.monotonic() - began:.1f} s"
        )
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("RELAYBUS_")},
            "RELAYBUS_DIR": str(folder),
            "RELAYBUS_TOKEN": TOKEN,
        }
        command = [sys.executable, "-m", "relaybus", "serve", "--port", "0"]
        with announced_server(command, Path(tmp), env, timeout=60) as (url, _pid):
            url = url.rstrip("/")
            with sync_playwright() as playwright:
                browser = launch(playwright)
                try:
                    for view in FIRST_VIEWS:  # the server's first requests: not counted
                        first_render(browser, url, view)
                    loads: dict[str, list[float]] = {view: [] for view in FIRST_VIEWS}
                    for _ in range(args.loads):  # interleaved
                        for view in FIRST_VIEWS:
                            loads[view].append(first_render(browser, url, view))
                    for view, times in loads.items():
                        print(
                            f"first render of {view} ({args.agents:,} agents, "
                            f"{args.messages:,} messages): median "
                            f"{statistics.median(times):.0f} ms, worst {max(times):.0f} ms "
                            f"over {len(times)} loads (target ≤ 1000 ms)"
                        )
                    for kind in SERIES:
                        samples = event_to_page(browser, url, args.events, kind)
                        print(
                            f"event to page ({kind}, {len(samples)} writes): "
                            f"p50 {percentile(samples, 0.5):.1f} ms, "
                            f"p99 {percentile(samples, 0.99):.1f} ms, "
                            f"max {max(samples):.1f} ms (targets p50 ≤ 100, p99 ≤ 300)"
                        )
                finally:
                    browser.close()


if __name__ == "__main__":
    main()
