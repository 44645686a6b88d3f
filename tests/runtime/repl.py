"""A small interactive program for the runtime tests and benchmark: a REPL that
reports, in its own output, every input line it received and when.

It prints a prompt (``repl> ``) and reads lines from its terminal (cooked mode,
so the terminal echoes them). Every line it reads is logged as::

    IN|<n>|<early>|<waited ms>|<json of the line>

``early`` is 1 when the line arrived while the REPL was busy (it checks its
input between ticks of busy work); ``waited`` is the time from the end of its
last output (the prompt) to the line's arrival, measured with the system-wide
monotonic clock. Commands (typed by the test as the user, or inside a message):

- ``busy SECONDS``: print ``BUSY-START``, a tick line every 50 ms for SECONDS,
  then ``BUSY-END``; stops early (after ``EARLY``) if input arrives meanwhile and
  the REPL runs with ``--stop-busy-on-input``.
- ``exit CODE`` / ``EXIT CODE``: exit with CODE; ``SIGNAL N``: kill itself with N.
- ``CRASH``: exit 5 at once, the first time only when ``--state DIR`` is given
  (a marker file there remembers it), so a restarted REPL survives it.
- ``paste on`` / ``paste off``: turn bracketed paste on (``ESC[?2004h``) or off.
- ``env NAME``: print ``ENV|NAME|<value>``; ``size``: print ``SIZE|<cols>|<rows>``.

Bracketed pastes (which may span lines) are logged as one input, without the
markers. It prints ``REPL-START|<pid>`` first.

Run: ``python repl.py [--state DIR] [--stop-busy-on-input]``.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import sys
import time
from pathlib import Path

PASTE_START = "\x1b[200~"
PASTE_END = "\x1b[201~"


def out(text: str, end: str = "\n") -> None:
    sys.stdout.write(text + end)
    sys.stdout.flush()


def input_waiting() -> bool:
    return bool(select.select([sys.stdin], [], [], 0)[0])


def busy(seconds: float, stop_on_input: bool) -> bool:
    """Busy work with output; True if input arrived meanwhile."""
    out("BUSY-START")
    early = False
    deadline = time.monotonic() + seconds
    tick = 0
    while time.monotonic() < deadline:
        tick += 1
        out(f"tick {tick}")
        if not early and input_waiting():
            early = True
            out("EARLY")
            if stop_on_input:
                break
        time.sleep(0.05)
    out("BUSY-END")
    return early


def read_input() -> str | None:
    """One input: a line, or a whole bracketed paste (markers removed)."""
    line = sys.stdin.readline()
    if not line:
        return None
    if PASTE_START not in line:
        return line.rstrip("\n")
    text = line
    while PASTE_END not in text:
        more = sys.stdin.readline()
        if not more:
            break
        text += more
    return text.replace(PASTE_START, "").replace(PASTE_END, "").rstrip("\n")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--state", type=Path)
    parser.add_argument("--stop-busy-on-input", action="store_true")
    args = parser.parse_args()
    out(f"REPL-START|{os.getpid()}")
    count = 0
    early = False
    while True:
        out("repl> ", end="")
        prompted = time.monotonic()
        line = read_input()
        arrived = time.monotonic()
        if line is None:
            out("EOF")
            return 0
        count += 1
        waited = (arrived - prompted) * 1000
        out(f"IN|{count}|{int(early)}|{waited:.1f}|{json.dumps(line)}")
        early = False
        words = line.split()
        if not words:
            continue
        if words[0] == "busy" and len(words) == 2:
            early = busy(float(words[1]), args.stop_busy_on_input)
        elif words[0] in ("exit", "EXIT") and len(words) == 2:
            return int(words[1])
        elif "EXIT" in words and words.index("EXIT") + 1 < len(words):
            return int(words[words.index("EXIT") + 1].strip("()\"'"))
        elif "SIGNAL" in words and words.index("SIGNAL") + 1 < len(words):
            os.kill(os.getpid(), int(words[words.index("SIGNAL") + 1]))
        elif "CRASH" in words:
            marker = args.state / "crashed" if args.state else None
            if marker is None or not marker.exists():
                if marker is not None:
                    marker.write_text("crashed", encoding="utf-8")
                out("CRASHING")
                return 5
        elif words[0] == "paste" and len(words) == 2:
            out("\x1b[?2004h" if words[1] == "on" else "\x1b[?2004l", end="")
        elif words[0] == "env" and len(words) == 2:
            out(f"ENV|{words[1]}|{os.environ.get(words[1], '')}")
        elif words == ["size"]:
            size = os.get_terminal_size(sys.stdout.fileno())
            out(f"SIZE|{size.columns}|{size.lines}")


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.exit(main())
