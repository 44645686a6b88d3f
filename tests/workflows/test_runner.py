"""The workflow runner end to end, in this process, with real scripted agent processes
(tests/support/scripted_agent.py) on a real SQLite relay: routing, depends_on,
fan-out/fan-in, retries, verification, review loops, nudges."""

from __future__ import annotations

import functools
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relaybus import Relay
from relaybus.models import WorkflowRunStatus
from relaybus.workflows.runner import WorkflowRunner
from relaybus.workflows.runner_state import RunState
from relaybus.workflows.spec import Review, StepSpec, Verify, Workflow
from tests.support.env import clean_environ
from tests.support.poll import until
from tests.support.scripted_agent import Agents

pytestmark = pytest.mark.slow

#: Seconds anything may take on a loaded machine; never reached when things work.
WAIT = 60.0


class Recorder:
    """A runner's progress events, kept for the test."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any], state: RunState) -> None:
        with self.lock:
            self.events.append(event)

    def close(self) -> None:
        return None

    def kinds(self, step: str | None = None) -> list[str]:
        with self.lock:
            return [e["event"] for e in self.events if step is None or e.get("step") == step]

    def of(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.events if e["event"] == kind]


@pytest.fixture
def relay_dir(tmp_path: Path) -> Path:
    return tmp_path / ".relay"


@pytest.fixture
def relay(relay_dir: Path) -> Iterator[Relay]:
    with Relay.open(dir=relay_dir) as opened:
        yield opened


@pytest.fixture
def agents(tmp_path: Path, relay_dir: Path, relay: Relay) -> Iterator[Agents]:
    env = clean_environ()
    env["RELAYBUS_DIR"] = str(relay_dir)
    started = Agents(tmp_path, env)
    yield started
    started.stop()


def step(name: str, task: str = "do {{ workflow.name }}", **fields: Any) -> StepSpec:
    fields.setdefault("timeout", WAIT)
    if "agent" not in fields and "capability" not in fields:
        fields["agent"] = "a1"
    return StepSpec(name=name, task=task, **fields)


def make(tmp_path: Path, *steps: StepSpec, **fields: Any) -> Workflow:
    return Workflow(
        name="t", steps={s.name: s for s in steps}, path=tmp_path / "t.yaml", source="x", **fields
    )


def runner_for(
    relay: Relay, relay_dir: Path, workflow: Workflow
) -> tuple[WorkflowRunner, Recorder]:
    recorder = Recorder()

    def open_tail() -> Relay:
        return Relay.open(dir=relay_dir)

    runner = WorkflowRunner(
        relay,
        workflow,
        open_tail=open_tail,
        progress=recorder,
        spawn=False,
    )
    return runner, recorder


def run(relay: Relay, relay_dir: Path, workflow: Workflow) -> tuple[WorkflowRunner, Recorder]:
    runner, recorder = runner_for(relay, relay_dir, workflow)
    runner.start()
    runner.execute()
    return runner, recorder


def ready(agents: Agents, *names: str) -> None:
    for name in names:
        assert until(functools.partial(agents.events, name, "ready"), WAIT), agents.lines(name)


def tasks_per_step(relay: Relay, run_id: int) -> Counter[str]:
    return Counter(
        str(t.meta["step"]) for t in relay.tasks(limit=1000) if t.meta.get("run") == run_id
    )


def test_a_named_agent_runs_its_step_and_its_result_is_recorded(
    tmp_path: Path, relay_dir: Path, relay: Relay, agents: Agents
) -> None:
    agents.start("a1", "--echo")
    ready(agents, "a1")

    runner, recorder = run(relay, relay_dir, make(tmp_path, step("hello")))

    assert runner.run is not None and runner.run.status == WorkflowRunStatus.DONE
    stored = relay.workflow_run(runner.run_id)
    assert stored.status == WorkflowRunStatus.DONE
    assert stored.state["steps"]["hello"]["result"] == "do t"
    (task,) = [t for t in relay.tasks() if t.meta.get("run") == runner.run_id]
    assert task.title == "t/hello" and task.target == "a1" and task.status.value == "done"
    assert task.meta == {"workflow": "t", "run": runner.run_id, "step": "hello", "attempt": 1}
    assert task.dedupe_key == f"workflow:{runner.run_id}:hello:1"
    assert recorder.kinds("hello") == ["step.offered", "step.claimed", "step.done"]
    assert recorder.kinds()[-1] == "run.finished"


def test_a_capability_step_goes_to_an_agent_with_that_capability(
    tmp_path: Path, relay_dir: Path, relay: Relay, agents: Agents
) -> None:
    agents.start("plain", "--result", "wrong agent")
    agents.start("rev", "--cap", "review", "--result", "reviewed")
    ready(agents, "plain", "rev")

    runner, recorder = run(relay, relay_dir, make(tmp_path, step("check", capability="review")))

    assert runner.state.steps["check"].result == "reviewed"
    (done,) = recorder.of("step.done")
    assert done["agent"] == "rev"
    assert agents.events("plain", "claimed") == []


def test_steps_run_after_their_dependencies_and_quote_their_results(
    tmp_path: Path, relay_dir: Path, relay: Relay, agents: Agents
) -> None:
    agents.start("a1", "--echo")
    ready(agents, "a1")
    workflow = make(
        tmp_path,
        step("build", "build it after {{ steps.plan.result }}", depends_on=("plan",)),
        step("plan", "the plan of {{ workflow.name }}"),
    )

    runner, recorder = run(relay, relay_dir, workflow)

    assert runner.state.steps["build"].result == "build it after the plan of t"
    order = [(e["event"], e["step"]) for e in recorder.events if e.get("step")]
    assert order.index(("step.done", "plan")) < order.index(("step.offered", "build"))


def test_independent_steps_fan_out_and_a_joining_step_waits_for_all(
    tmp_path: Path, relay_dir: Path, relay: Relay, agents: Agents
) -> None:
    agents.start("w1", "--cap", "work", "--sleep", "0.3", "--echo")
    agents.start("w2", "--cap", "work", "--sleep", "0.3", "--echo")
    agents.start("a1", "--echo")
    ready(agents, "w1", "w2", "a1")
    workflow = make(
        tmp_path,
        step("start", "go"),
        step("left", "L", capability="work", depends_on=("start",)),
        step("right", "R", capability="work", depends_on=("start",)),
        step("join", "{{ steps.left.result }}+{{ steps.right.result }}",
             depends_on=("left", "right")),
    )  # fmt: skip

    runner, recorder = run(relay, relay_dir, workflow)

    assert runner.state.steps["join"].result == "L+R"
    order = [(e["event"], e["step"]) for e in recorder.events if e.get("step")]
    offered = [order.index(("step.offered", s)) for s in ("left", "right")]
    finished = [order.index(("step.done", s)) for s in ("left", "right")]
    assert max(offered) < min(finished)  # both out before either came back
    assert order.index(("step.offered", "join")) > max(finished)
    assert tasks_per_step(relay, runner.run_id) == {"start": 1, "left": 1, "right": 1, "join": 1}


def test_a_failed_attempt_is_tried_again_within_its_retries(
    tmp_path: Path, relay_dir: Path, relay: Relay, agents: Agents
) -> None:
    agents.start("a1", "--fail", "1", "--result", "second time")
    ready(agents, "a1")

    runner, recorder = run(relay, relay_dir, make(tmp_path, step("flaky", retries=1)))

    assert runner.run is not None and runner.run.status == WorkflowRunStatus.DONE
    assert runner.state.steps["flaky"].result == "second time"
    (retry,) = recorder.of("step.retry")
    assert retry["reason"] == "scripted failure 1 of 1"
    assert tasks_per_step(relay, runner.run_id) == {"flaky": 2}


def test_a_step_that_fails_past_its_retries_fails_the_run(
    tmp_path: Path, relay_dir: Path, relay: Relay, agents: Agents
) -> None:
    agents.start("a1", "--fail", "9")
    ready(agents, "a1")
    workflow = make(tmp_path, step("flaky", retries=1), step("after", depends_on=("flaky",)))

    runner, recorder = run(relay, relay_dir, workflow)

    assert runner.run is not None and runner.run.status == WorkflowRunStatus.FAILED
    assert runner.state.steps["flaky"].reason == "scripted failure 2 of 9"
    assert runner.state.steps["after"].status == "pending"
    assert tasks_per_step(relay, runner.run_id) == {"flaky": 2}
    assert recorder.of("run.finished")[0]["status"] == "failed"


def test_each_kind_of_verification_passes_on_a_good_result(
    tmp_path: Path, relay_dir: Path, relay: Relay, agents: Agents
) -> None:
    (tmp_path / "out.txt").write_text("made", encoding="utf-8")
    agents.start("a1", "--result", "all DONE")
    ready(agents, "a1")
    check = Verify(
        contains="DONE", command='test "$RELAYBUS_RESULT" = "all DONE" && test -f out.txt',
        file="out.txt",
    )  # fmt: skip

    runner, recorder = run(relay, relay_dir, make(tmp_path, step("v", verify=check)))

    assert runner.state.steps["v"].status == "done"
    assert recorder.kinds("v") == ["step.offered", "step.claimed", "step.verifying", "step.done"]


@pytest.mark.parametrize(
    ("check", "reason"),
    [
        (Verify(contains="DONE"), "the result does not contain 'DONE'"),
        (Verify(file="missing.txt"), "file missing.txt does not exist"),
        (Verify(command="echo no >&2; exit 3"), "command 'echo no >&2; exit 3' exited 3: no"),
    ],
)
def test_a_failing_verification_fails_the_attempt_and_is_retried(
    tmp_path: Path, relay_dir: Path, relay: Relay, agents: Agents, check: Verify, reason: str
) -> None:
    agents.start("a1", "--results", "nope,nope")
    ready(agents, "a1")

    runner, recorder = run(relay, relay_dir, make(tmp_path, step("v", verify=check, retries=1)))

    assert runner.run is not None and runner.run.status == WorkflowRunStatus.FAILED
    (retry,) = recorder.of("step.retry")
    assert retry["reason"].startswith(f"verification failed: {reason}")
    assert runner.state.steps["v"].reason is not None
    assert runner.state.steps["v"].reason.startswith(f"verification failed: {reason}")
    assert tasks_per_step(relay, runner.run_id) == {"v": 2}


def test_a_verification_that_fails_once_passes_on_the_retry(
    tmp_path: Path, relay_dir: Path, relay: Relay, agents: Agents
) -> None:
    agents.start("a1", "--results", "not yet,DONE now")
    ready(agents, "a1")
    workflow = make(tmp_path, step("v", verify=Verify(contains="DONE"), retries=2))

    runner, _ = run(relay, relay_dir, workflow)

    assert runner.state.steps["v"].result == "DONE now"
    assert tasks_per_step(relay, runner.run_id) == {"v": 2}


def review_workflow(tmp_path: Path, rounds: int) -> Workflow:
    return make(
        tmp_path,
        step("implement", "code it; review so far: {{ steps.review.result }}", agent="coder"),
        step(
            "review",
            "review {{ steps.implement.result }}",
            agent="reviewer",
            depends_on=("implement",),
            review=Review(of="implement", max_rounds=rounds),
        ),
    )


def test_a_review_loop_runs_the_reviewed_step_again_until_approved(
    tmp_path: Path, relay_dir: Path, relay: Relay, agents: Agents
) -> None:
    agents.start("coder", "--echo")
    agents.start("reviewer", "--approve-on", "2")
    ready(agents, "coder", "reviewer")

    runner, recorder = run(relay, relay_dir, review_workflow(tmp_path, rounds=3))

    assert runner.run is not None and runner.run.status == WorkflowRunStatus.DONE
    assert runner.state.steps["review"].result == "APPROVED (round 2)"
    assert runner.state.steps["review"].round == 2
    assert tasks_per_step(relay, runner.run_id) == {"implement": 2, "review": 2}
    # The second implementation quotes the first review.
    assert runner.state.steps["implement"].result == (
        "code it; review so far: CHANGES REQUESTED (round 1): add tests"
    )
    assert [e["round"] for e in recorder.of("step.review")] == [2]


def test_a_review_loop_that_reaches_its_cap_fails(
    tmp_path: Path, relay_dir: Path, relay: Relay, agents: Agents
) -> None:
    agents.start("coder", "--echo")
    agents.start("reviewer", "--approve-on", "9")
    ready(agents, "coder", "reviewer")

    runner, _ = run(relay, relay_dir, review_workflow(tmp_path, rounds=2))

    assert runner.run is not None and runner.run.status == WorkflowRunStatus.FAILED
    assert runner.state.steps["review"].reason == "not approved after 2 round(s) (no 'APPROVED')"
    assert tasks_per_step(relay, runner.run_id) == {"implement": 2, "review": 2}


def test_a_hung_agent_is_nudged_then_its_step_is_offered_to_another(
    tmp_path: Path, relay_dir: Path, relay: Relay, agents: Agents
) -> None:
    agents.start("stuck", "--cap", "work", "--hang")
    agents.start("spare", "--cap", "work", "--named-only", "--result", "picked up")
    ready(agents, "stuck", "spare")
    workflow = make(tmp_path, step("job", capability="work"), nudge_after=2.0, retry_after=2.0)

    runner, recorder = run(relay, relay_dir, workflow)

    assert runner.run is not None and runner.run.status == WorkflowRunStatus.DONE
    assert runner.state.steps["job"].result == "picked up"
    nudge = recorder.of("step.nudged")[0]
    assert nudge["agent"] == "stuck"
    moved = recorder.of("step.reoffered")[0]
    assert moved["agent"] == "spare"
    assert until(lambda: agents.events("stuck", "message"), WAIT)
    nudges = agents.events("stuck", "message")
    assert nudges[0]["body"].startswith(f"task #{nudge['task']} is still yours: t/job")
    first, second = sorted(
        (t for t in relay.tasks() if t.meta.get("run") == runner.run_id), key=lambda t: t.id
    )
    assert first.status.value == "canceled" and first.target == "cap:work"
    assert second.target == "spare" and second.status.value == "done"


def test_a_hung_named_agent_fails_its_attempt_after_the_nudge(
    tmp_path: Path, relay_dir: Path, relay: Relay, agents: Agents
) -> None:
    agents.start("a1", "--hang")
    ready(agents, "a1")
    workflow = make(tmp_path, step("job"), nudge_after=0.5, retry_after=0.5)

    runner, recorder = run(relay, relay_dir, workflow)

    assert runner.run is not None and runner.run.status == WorkflowRunStatus.FAILED
    assert recorder.kinds("job")[-2:] == ["step.nudged", "step.failed"]
    reason = runner.state.steps["job"].reason
    assert reason is not None and reason.startswith("a1 idle for")


def test_a_step_times_out_its_task_is_cancelled_and_tried_again(
    tmp_path: Path, relay_dir: Path, relay: Relay, agents: Agents
) -> None:
    agents.start("a1", "--hang")
    ready(agents, "a1")
    workflow = make(tmp_path, step("slow", timeout=0.5, retries=1))

    runner, recorder = run(relay, relay_dir, workflow)

    assert runner.run is not None and runner.run.status == WorkflowRunStatus.FAILED
    assert [e["reason"] for e in recorder.of("step.retry")] == ["timed out after 0.5 s"]
    assert {t.status.value for t in relay.tasks() if t.meta.get("run") == runner.run_id} == {
        "canceled"
    }
