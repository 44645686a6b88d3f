"""A separate OS process acting on a relay, for the multi-process tests.

``python relay_child.py URL MODE ARGS...`` talks on stdin/stdout, one JSON object a line:

- ``race AGENT FIRST COUNT``: register AGENT (capability ``race``), print ``{"ready": ...}``,
  wait for a ``go`` line, try to claim tasks FIRST..FIRST+COUNT-1 in order, print
  ``{"agent": AGENT, "won": [ids]}``, then stay alive (so its pid stays alive and its claims
  valid) until stdin closes.
- ``send SENDER TO``: send messages to TO in a loop, printing ``{"id": n}`` after each send
  returns (that is, after it is acknowledged), until killed.
- ``send-on-go SENDER TO``: print ``{"ready": ...}``, wait for ``go``, send one message,
  print its id and exit.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from relaybus.errors import Conflict
from relaybus.service import Service
from relaybus.store import Store


def say(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def race(service: Service, agent: str, first: int, count: int) -> None:
    service.register(agent, capabilities=["race"], pid=os.getpid())
    say(ready=agent)
    if sys.stdin.readline().strip() != "go":
        return
    won = []
    for task_id in range(first, first + count):
        try:
            service.claim(task_id, agent)
        except Conflict:
            continue
        won.append(task_id)
    say(agent=agent, won=won)
    sys.stdin.read()  # until the parent closes stdin


def send_forever(service: Service, sender: str, to: str) -> None:
    n = 0
    while True:
        n += 1
        message = service.send(sender, to, f"message {n}", meta={"n": n})
        say(id=message.id, n=n)


def send_on_go(service: Service, sender: str, to: str) -> None:
    say(ready=sender)
    if sys.stdin.readline().strip() != "go":
        return
    say(id=service.send(sender, to, "from another process").id)


def main(argv: list[str]) -> None:
    url, mode, *args = argv
    with Store(url) as store:
        service = Service(store)
        if mode == "race":
            race(service, args[0], int(args[1]), int(args[2]))
        elif mode == "send":
            send_forever(service, args[0], args[1])
        elif mode == "send-on-go":
            send_on_go(service, args[0], args[1])
        else:
            raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
