"""``relaybus demo``: real agent processes review a PR, as a workflow, through the
embedded relay.

The scenario is the workflow file ``review.yaml`` shipped in the package (the same
as ``examples/review.yaml``), run by the workflow runner
(:mod:`relaybus.workflows.demo_workflow`). In a temporary directory, its author
and N reviewers run as separate OS processes (:mod:`relaybus.workflows.demo_agent`)
on one relay: alice writes the PR (step ``write``); the review step's task is
offered to ``cap:review`` and the reviewers race to claim it (exactly one wins;
the others see who holds it); the winner reports progress, replies to the author
in the task's thread and approves; the author, given the ``merge`` step, closes
it and broadcasts thanks, and everyone exits. This process tails the relay's
event log, the agents' own reports and the runner's events, prints the
conversation as it happens, then checks every invariant
(:func:`~relaybus.workflows.demo_invariants.check_invariants`).

With ``server=True`` (``relaybus demo --server``) the relay is a real
``relaybus serve`` process on a free loopback port, over the temporary
directory: every agent process and this one reach it over HTTP only
(``RELAYBUS_URL``), and it is stopped by its pid at the end, however the demo
ends.

    python -m relaybus.workflows.demo --reviewers 5 --json [--server]
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
from ..models import WorkflowRunStatus
from ..settings import Settings
from .demo_invariants import Invariant, Observations, check_invariants, exit_code, winner
from .demo_render import Printer, Step
from .demo_run import DemoRun
from .demo_server import ServerProcess
from .demo_workflow import WORKFLOW_FILE, WorkflowThread, cast, demo_workflow, review_step

__all__ = [
    "Invariant", "Observations", "check_invariants", "exit_code", "main", "run_demo",
]  # fmt: skip

MAX_REVIEWERS = 50
#: Seconds the workflow run gets to finish by itself once every agent exited 0.
FINISH_SECONDS = 10.0
#: Seconds a cancelled workflow run's runner gets to stop.
STOP_SECONDS = 30.0
#: How often the wait for a stopping runner looks again (seconds).
JOIN_SLICE = 0.05


def run_demo(
    reviewers: int = 3,
    json_output: bool = False,
    *,
    keep: bool = False,
    timeout: float = 60.0,
    server: bool = False,
) -> int:
    """Run the demo and print it; returns the exit code (0 only if every invariant
    held, the workflow run is done and, with ``server``, the server then shut down
    cleanly).

    Args:
        reviewers: how many reviewer processes race for the task (1–50).
        json_output: print one JSON document (``ok``, ``steps`` with ``t_ms``
            timings, ``invariants`` with ``ok``/``detail``, ``agents``,
            ``observations``, ``server``, ``workflow``: the file, run id and
            status) instead of the human log.
        keep: keep the temporary directory (its path is printed) instead of
            deleting it.
        timeout: seconds the agents may take (and, with ``server``, the server
            to get ready); agent processes still running then are killed and
            the demo fails.
        server: run the relay as a ``relaybus serve`` subprocess and have
            everyone talk to it over HTTP; the JSON document's ``server`` gives
            its ``url``, ``pid``, ``exit_code`` and ``clean_exit``.

    Raises:
        InvalidInput: ``reviewers`` or ``timeout`` out of range.
        StoreError: the temporary relay cannot be created, or the server did
            not start (it is stopped).
    """
    if not 1 <= reviewers <= MAX_REVIEWERS:
        raise InvalidInput(f"the demo runs 1-{MAX_REVIEWERS} reviewers, not {reviewers}")
    if not timeout > 0:
        raise InvalidInput(f"the timeout is a positive number of seconds, not {timeout}")
    workflow = demo_workflow()
    agents = cast(workflow, reviewers)
    author, names = agents[0].name, [a.name for a in agents[1:]]
    printer = None if json_output else Printer([author, *names])
    with contextlib.ExitStack() as stack:
        if keep:
            root = Path(tempfile.mkdtemp(prefix="relaybus-demo-"))
        else:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="relaybus-demo-")))
        relay_dir = root / ".relay"
        url: str | None = None
        process: ServerProcess | None = None
        if server:
            process = ServerProcess(relay_dir)
            stack.callback(process.stop)  # by its pid, however the demo ends
            url = process.start(timeout)
        # No token: the server is open (loopback); the agents act under their names.
        settings = Settings(dir=relay_dir, database=None, url=url, token=None, workspace="default")
        relay = stack.enter_context(Relay.open(settings=settings))
        if printer is not None:
            printer.line(
                [("relaybus demo", "bold"), (f": {author} asks for a review; ", "")]
                + [(f"{', '.join(names)} race to claim it", "")]
            )
            kept = "kept" if keep else "deleted at the end"
            if process is not None:
                printer.line([(f"  relay server: {url} (pid {process.pid})", "dim")])
                printer.line([(f"  its relay: {relay_dir} ({kept})", "dim")])
            else:
                printer.line([(f"  relay: {relay_dir} ({kept})", "dim")])
            printer.line([(f"  workflow: {WORKFLOW_FILE} (run by the workflow runner)", "dim")])
        on_step = printer.step if printer is not None else _drop
        run = DemoRun(
            relay, relay_dir, agents, timeout=timeout, on_step=on_step, server_url=url,
            workflow=True,
        )  # fmt: skip
        stack.callback(run.close)  # also on Ctrl-C: never leave an agent behind

        def open_relay() -> Relay:
            return Relay.open(settings=settings)

        def ended() -> None:
            done = flow.status == WorkflowRunStatus.DONE
            status = flow.status.value if flow.status is not None else "failed"
            run.workflow_ended(done, flow.error or status)

        flow = WorkflowThread(workflow, open_relay, on_event=run.workflow_event, on_end=ended)
        stack.callback(_end_workflow, relay, flow, failed=True)  # also on Ctrl-C
        run.start()
        flow.start()
        run.follow(then=lambda: _end_workflow(relay, flow, failed=run.failed))
        observations = run.observations(flow.task_of(review_step(workflow)))
    elapsed = time.time() - run.t0
    invariants = check_invariants(observations)
    code = exit_code(invariants)
    if process is not None and not process.clean_exit:
        code = 1
    if flow.status != WorkflowRunStatus.DONE:
        code = 1
    if printer is not None:
        printer.summary(invariants, elapsed)
        _workflow_summary(printer, flow)
        if process is not None:
            _server_summary(printer, process)
        for child in run.children.values():
            if child.stderr and (child.killed or child.proc.returncode != 0):
                printer.line([(f"{child.name} stderr:", "bold red")])
                for line in child.stderr[-15:]:
                    printer.line([(f"  {line}", "dim")])
        return code
    document = {
        "ok": code == 0,
        "exit_code": code,
        "author": author,
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
        "server": None if process is None else _server_document(process),
        "workflow": {
            "file": str(WORKFLOW_FILE),
            "name": workflow.name,
            "run_id": flow.run_id,
            "status": None if flow.status is None else flow.status.value,
            "error": flow.error,
        },
    }
    print(json.dumps(document, ensure_ascii=False, indent=2))
    return code


def _end_workflow(relay: Relay, flow: WorkflowThread, *, failed: bool) -> None:
    """The agents are gone. If they all played their part (not ``failed``), the run
    finishes by itself: wait :data:`FINISH_SECONDS` for it. A run still going then
    cannot finish any more: cancel it (its runner notices and stops) and wait
    :data:`STOP_SECONDS` for the runner's thread. Idempotent."""
    from .runner_control import cancel_run
    from .runner_store import RunStore

    if not failed:
        flow.join(FINISH_SECONDS)
    deadline = time.monotonic() + STOP_SECONDS
    cancelled = False
    while flow.running and time.monotonic() < deadline:
        if not cancelled and flow.run_id is not None:  # else: it is still starting
            cancelled = True
            with contextlib.suppress(RelayError):  # e.g. Conflict: it just finished
                cancel_run(relay, RunStore(relay).get(flow.run_id))
        flow.join(JOIN_SLICE)


def _workflow_summary(printer: Printer, flow: WorkflowThread) -> None:
    """A run not done fails the demo: say so (a done one said so in the conversation)."""
    if flow.status == WorkflowRunStatus.DONE:
        return
    status = "did not start" if flow.status is None else flow.status.value
    why = f": {flow.error}" if flow.error else ""
    printer.line([(f"✗ workflow run #{flow.run_id} {status}{why}", "bold red")])


def _server_document(process: ServerProcess) -> dict[str, object]:
    return {
        "url": process.url,
        "pid": process.pid,
        "exit_code": process.returncode,
        "killed": process.killed,
        "clean_exit": process.clean_exit,
        "log": list(process.log)[-15:],
    }


def _server_summary(printer: Printer, process: ServerProcess) -> None:
    if process.clean_exit:
        printer.line([(f"relay server (pid {process.pid}) stopped cleanly", "dim")])
        return
    how = "had to be killed" if process.killed else f"exited with {process.returncode}"
    printer.line([(f"✗ relay server (pid {process.pid}) {how}", "bold red")])
    for line in list(process.log)[-15:]:
        printer.line([(f"  {line}", "dim")])


def _drop(step: Step) -> None:
    """``on_step`` for JSON output: steps are printed with the document at the end."""


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m relaybus.workflows.demo [--reviewers N] [--json] [--keep] [--timeout S]
    [--server]``."""
    parser = argparse.ArgumentParser(prog="python -m relaybus.workflows.demo")
    parser.add_argument("--reviewers", type=int, default=3, help="reviewer processes (1-50)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--keep", action="store_true", help="keep the temporary relay")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before giving up")
    parser.add_argument("--server", action="store_true", help="run the relay as a server")
    args = parser.parse_args(argv)
    try:
        return run_demo(
            args.reviewers, args.json, keep=args.keep, timeout=args.timeout, server=args.server
        )
    except RelayError as exc:
        print(f"relaybus demo: {exc.message}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
