"""Write the sync client from the async one: ``python scripts/unasync.py [--check]``.

The async modules of ``relaybus.client`` are the source (``aio.py``,
``aio_handle.py``, ``aio_backends.py``, ``aio_integrations.py``, ``aio_pairs.py``);
their sync twins (``relay.py``, ``handle.py``, ``backends.py``, ``integrations.py``,
``pairs.py``) are generated: the same code with ``async``/``await`` removed and the
async names replaced by the sync ones (``AsyncRelay`` → ``Relay``, ``aclose`` →
``close``, ``httpx.AsyncClient`` → ``httpx.Client``…), then sorted and formatted by
ruff. httpcore keeps its sync code the same way (its ``unasync.py``).

``--check`` writes nothing and exits 1 when a committed sync module differs from what
its source generates (a hand edit, or a source edited without running the script).
"""

from __future__ import annotations

import argparse
import difflib
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "src" / "relaybus" / "client"

#: Async source → generated sync module, in ``src/relaybus/client/``.
FILES = {
    "aio.py": "relay.py",
    "aio_handle.py": "handle.py",
    "aio_backends.py": "backends.py",
    "aio_integrations.py": "integrations.py",
    "aio_pairs.py": "pairs.py",
    "aio_messages.py": "messages.py",
    "aio_view.py": "view.py",
    "aio_workflow_runs.py": "workflow_runs.py",
    "aio_spawn.py": "spawn.py",
}

#: (pattern, replacement), applied in order to every line of a source.
SUBS: list[tuple[str, str]] = [
    (r"\bAsyncGenerator\[(.+?), None\]", r"Generator[\1, None, None]"),
    (r"\bAsync([A-Z]\w*)", r"\1"),  # AsyncRelay, AsyncCallRunner, httpx.AsyncClient, AsyncIterator…
    (r"\basync (def|with|for)\b", r"\1"),
    (r"\bawait ", ""),
    (r"\b__aenter__\b", "__enter__"),
    (r"\b__aexit__\b", "__exit__"),
    (r"\baclose\b", "close"),
    (r"\baclosing\b", "closing"),
    (r"\bafollow\b", "follow"),
    (r"\bnew_async_client\b", "new_client"),
    (r"\baio_(\w+)", r"\1"),  # .aio_handle → .handle, .aio_backends → .backends
    (r"\.aio\b", ".relay"),  # the module of AsyncRelay → the module of Relay
]
COMPILED = [(re.compile(pattern), replacement) for pattern, replacement in SUBS]

#: The note atop each async source; left out of the sync module (the header replaces it).
SOURCE_NOTE = "# scripts/unasync.py writes the sync twin of this module: edit here, then run it.\n"

HEADER = (
    "# Generated from {source} by scripts/unasync.py: do not edit. Edit {source}\n"
    "# (the async source) and run `python scripts/unasync.py`; CI checks they agree.\n"
)


def unasync(text: str) -> str:
    """The sync code of an async source (before formatting)."""
    lines = []
    for line in text.replace(SOURCE_NOTE + "\n", "").splitlines(keepends=True):
        for pattern, replacement in COMPILED:
            line = pattern.sub(replacement, line)
        lines.append(line)
    return "".join(lines)


def ruff(args: list[str], code: str, filename: Path) -> str:
    """``code`` through ``ruff <args>`` (stdin to stdout), as if it were ``filename``."""
    done = subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--stdin-filename", str(filename), "-"],
        input=code,
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=ROOT,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"ruff {' '.join(args)} failed on {filename}:\n{done.stderr}")
    return done.stdout


def generate(source: str, target: str) -> str:
    """The text of ``target`` generated from ``source`` (file names in the client)."""
    code = HEADER.format(source=source) + unasync((CLIENT / source).read_text(encoding="utf-8"))
    path = CLIENT / target
    code = ruff(["check", "--fix", "--select", "I,F401", "--quiet"], code, path)
    return ruff(["format", "--quiet"], code, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="fail if a sync module differs; write nothing"
    )
    args = parser.parse_args(argv)
    stale = []
    for source, target in FILES.items():
        path = CLIENT / target
        wanted = generate(source, target)
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current == wanted:
            continue
        if args.check:
            stale.append(target)
            rel = path.relative_to(ROOT)
            diff = difflib.unified_diff(
                current.splitlines(keepends=True),
                wanted.splitlines(keepends=True),
                f"{rel} (committed)",
                f"{rel} (generated from {source})",
            )
            sys.stdout.writelines(diff)
        else:
            path.write_text(wanted, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)} from {source}")
    if stale:
        print(
            f"unasync: {', '.join(stale)} differ from their async sources; "
            "run `python scripts/unasync.py`",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
