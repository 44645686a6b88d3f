"""``relaybus demo``: real agent processes review a PR through the embedded relay.

In a temporary directory, one author and N reviewers run as separate OS
processes (:mod:`relaybus.workflows.demo_agent`) on one relay: the author posts
a claimable review task to ``cap:review``, the reviewers race to claim it
(exactly one wins; the others see who holds it), the winner reports progress
and replies in the thread, the author closes the task and broadcasts thanks.
This process tails the relay's event log and the agents' own reports, prints
the conversation as it happens, then checks every invariant
(:func:`~relaybus.workflows.demo_invariants.check_invariants`).

    python -m relaybus.workflows.demo --reviewers 5 --json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from ..client import Relay
from ..errors import InvalidInput, RelayError
from ..settings import Settings
from .demo_agent import AUTHOR, reviewer_names
from .demo_invariants import Invariant, Observations, check_invariants, exit_code, winner
from .demo_render import Printer, Step
from .demo_run import DemoRun

__all__ = [
    "Invariant", "Observations", "check_invariants", "exit_code", "main", "run_demo",
]  # fmt: skip

MAX_REVIEWERS = 50


def run_demo(
    reviewers: int = 3, json_output: bool = False, *, keep: bool = False, timeout: float = 60.0
) -> int:
    """Run the demo and print it; returns the exit code (0 only if every invariant held).

    Args:
        reviewers: how many reviewer processes race for the task (1–50).
        json_output: print one JSON document (``ok``, ``steps`` with ``t_ms``
            timings, ``invariants`` with ``ok``/``detail``, ``agents``,
            ``observations``) instead of the human log.
        keep: keep the temporary directory (its path is printed) instead of
            deleting it.
        timeout: seconds the whole run may take; agent processes still running
            then are killed and the demo fails.

    Raises:
        InvalidInput: ``reviewers`` or ``timeout`` out of range.
        StoreError: the temporary relay cannot be created.
    """
    if not 1 <= reviewers <= MAX_REVIEWERS:
        raise InvalidInput(f"the demo runs 1-{MAX_REVIEWERS} reviewers, not {reviewers}")
    if not timeout > 0:
        raise InvalidInput(f"the timeout is a positive number of seconds, not {timeout}")
    names = reviewer_names(reviewers)
    printer = None if json_output else Printer([AUTHOR, *names])
    with contextlib.ExitStack() as stack:
        if keep:
            root = Path(tempfile.mkdtemp(prefix="relaybus-demo-"))
        else:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="relaybus-demo-")))
        relay_dir = root / ".relay"
        settings = Settings(dir=relay_dir, database=None, url=None, workspace="default")
        relay = stack.enter_context(Relay.open(settings=settings))
        if printer is not None:
            printer.line(
                [("relaybus demo", "bold"), (f": {AUTHOR} asks for a review; ", "")]
                + [(f"{', '.join(names)} race to claim it", "")]
            )
            kept = "kept" if keep else "deleted at the end"
            printer.line([(f"  relay: {relay_dir} ({kept})", "dim")])
        on_step = printer.step if printer is not None else _drop
        run = DemoRun(relay, relay_dir, names, timeout=timeout, on_step=on_step)
        stack.callback(run.close)  # also on Ctrl-C: never leave an agent behind
        run.start()
        run.follow()
        observations = run.observations()
    elapsed = time.time() - run.t0
    invariants = check_invariants(observations)
    code = exit_code(invariants)
    if printer is not None:
        printer.summary(invariants, elapsed)
        for child in run.children.values():
            if child.stderr and (child.killed or child.proc.returncode != 0):
                printer.line([(f"{child.name} stderr:", "bold red")])
                for line in child.stderr[-15:]:
                    printer.line([(f"  {line}", "dim")])
        return code
    document = {
        "ok": code == 0,
        "exit_code": code,
        "author": AUTHOR,
        "reviewers": names,
        "winner": winner(observations),
        "task_id": observations.task_id,
        "relay_dir": str(relay_dir),
        "kept": keep,
        "elapsed_ms": round(elapsed * 1000, 3),
        "steps": [step.to_dict() for step in run.steps],
        "invariants": [inv.to_dict() for inv in invariants],
        "agents": {
            name: {
                "role": child.role,
                "pid": child.proc.pid,
                "exit_code": child.proc.returncode,
                "killed": child.killed,
                "stderr": child.stderr[-15:],
            }
            for name, child in run.children.items()
        },
        "observations": observations.to_dict(),
    }
    print(json.dumps(document, ensure_ascii=False, indent=2))
    return code


def _drop(step: Step) -> None:
    """``on_step`` for JSON output: steps are printed with the document at the end."""


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m relaybus.workflows.demo [--reviewers N] [--json] [--keep] [--timeout S]``."""
    parser = argparse.ArgumentParser(prog="python -m relaybus.workflows.demo")
    parser.add_argument("--reviewers", type=int, default=3, help="reviewer processes (1-50)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--keep", action="store_true", help="keep the temporary relay")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before giving up")
    args = parser.parse_args(argv)
    try:
        return run_demo(args.reviewers, args.json, keep=args.keep, timeout=args.timeout)
    except RelayError as exc:
        print(f"relaybus demo: {exc.message}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
