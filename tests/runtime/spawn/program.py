"""A scripted agent program for the spawn tests (no model): ``python program.py MODE ...``.

- ``echo OUT``: shows a ``ready> `` prompt, answers each input line with
  ``got: LINE`` and appends the line to the file OUT.
- ``crash-once OUT MARK``: as ``echo``, but on its first run (no file MARK yet) it
  makes MARK and exits 1 on the first line it reads, before echoing it.
- ``ignore-term``: ignores SIGTERM, shows ``stubborn> ``, waits for ever.
- ``exit CODE``: prints ``bye CODE`` and exits with CODE.
- ``print TEXT``: prints TEXT and exits 0; ``fail``: prints two lines and exits 3.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path


def echo(out: Path, crash_mark: Path | None = None) -> None:
    crash = crash_mark is not None and not crash_mark.exists()
    if crash and crash_mark is not None:
        crash_mark.write_text("crashed", encoding="utf-8")
    while True:
        sys.stdout.write("ready> ")
        sys.stdout.flush()
        line = sys.stdin.readline()
        if not line:
            return
        if crash:
            sys.exit(1)
        line = line.rstrip("\r\n")
        with out.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
        print(f"got: {line}", flush=True)


def main() -> None:
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "echo":
        echo(Path(args[0]))
    elif mode == "crash-once":
        echo(Path(args[0]), Path(args[1]))
    elif mode == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sys.stdout.write("stubborn> ")
        sys.stdout.flush()
        for _ in range(3600):
            time.sleep(1)
    elif mode == "exit":
        print(f"bye {args[0]}", flush=True)
        sys.exit(int(args[0]))
    elif mode == "print":
        print(args[0], flush=True)
    elif mode == "fail":
        print("step one", flush=True)
        print("it broke", flush=True)
        sys.exit(3)


if __name__ == "__main__":
    main()
