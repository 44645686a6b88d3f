"""Hooks and the warm local relay: a hook reads the mail through the relay when one
runs (the same mail as the service's inbox), never starts one, and reads the SQLite
file itself when none runs or ``RELAYBUS_DAEMON=0``. Real hook processes, a real
relay on its Unix socket; every test stops the relay it started."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from relaybus import Relay
from relaybus.client import warm
from relaybus.identity import session_identity
from relaybus.models import Via
from relaybus.tools.hooks import direct
from relaybus.tools.session import session_agent
from tests.client.test_warm import wait_gone
from tests.support.poll import until
from tests.tools.hookutil import hook_env, payload, run_hook
from tests.tools.test_hook_mail import ME, Workspaces, check, plans, play

#: Generous: a relay starting on a loaded 2-core machine.
HUNG = 60.0


@pytest.fixture(scope="module")
def warm_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A warm relay on a fresh relay folder; stopped at the end."""
    folder = tmp_path_factory.mktemp("warm") / ".relay"
    Relay.open(dir=folder).close()
    info = warm.ensure(folder)
    yield folder
    assert info.pid is not None
    warm.stop(folder)
    wait_gone(info.pid)


@pytest.fixture
def workspaces() -> Workspaces:
    return Workspaces()


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan=plans)
def test_the_hooks_read_through_the_warm_relay_returns_what_the_service_inbox_returns(
    warm_relay: Path, workspaces: Workspaces, plan: tuple[object, ...]
) -> None:
    workspace = "w" + workspaces.next()
    socket = warm.socket_path(warm_relay)
    with Relay.open(dir=warm_relay, workspace=workspace) as relay:
        play(relay, plan)
        check(
            relay,
            lambda skip, limit: direct.warm_mail(
                socket, workspace, ME, skip=skip, limit=limit, timeout=30.0
            ),
        )


def test_reading_where_no_warm_relay_listens_fails_as_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        direct.warm_mail(tmp_path / "relay.sock", "default", ME)


@pytest.fixture
def session(tmp_path: Path) -> Iterator[tuple[Relay, dict[str, str], Path]]:
    """A Claude Code session without ``relaybus mcp`` on a relay in tmp_path/relay:
    the relay (in-process, for checks), the hook environment with the warm relay
    allowed, and the project folder. Any warm relay is stopped at the end."""
    project = tmp_path / "project"
    project.mkdir()
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    env = hook_env(tmp_path, runtime, "sess-warm", CLAUDE_PROJECT_DIR=str(project))
    env.pop("RELAYBUS_DAEMON", None)
    folder = tmp_path / "relay"
    with Relay.open(dir=folder) as relay:
        yield relay, env, project
    info = warm.probe(folder)
    if info is not None and info.pid is not None:
        warm.stop(folder)
        wait_gone(info.pid)


def access_log(folder: Path) -> str:
    log = folder / "relay.log"
    return log.read_text(encoding="utf-8") if log.exists() else ""


def logged(folder: Path, line: str) -> bool:
    """Whether the warm relay logs ``line`` within :data:`HUNG` seconds (it logs a
    request as it answers, so a moment after the change the client saw)."""
    return until(lambda: line in access_log(folder), HUNG)


@pytest.mark.parametrize("running", [True, False], ids=["warm relay running", "none running"])
def test_a_hook_shows_the_mail_once_with_or_without_a_warm_relay_and_starts_none(
    session: tuple[Relay, dict[str, str], Path], running: bool
) -> None:
    relay, env, project = session
    folder = Path(env["RELAYBUS_DIR"])
    identity = session_identity("claude", cwd=str(project), env=env)
    me = session_agent(relay, identity, register=True)
    sent = relay.register("bob", pid=None).send(me.id, "merge freeze at 17:00")
    since = relay.last_event_id()
    if running:
        warm.ensure(folder)

    run = run_hook("user-prompt-submit", payload("user-prompt-submit", cwd=str(project)), env)

    assert "merge freeze at 17:00" in run.context()
    # the background process marks it read (through the warm relay when it runs)
    found = relay.wait_events(HUNG, since=since, kinds=["message.read"])
    assert [e.agent_id for e in found] == [me.id]
    [receipt] = relay.deliveries(sent.id)
    assert (receipt.state.value, receipt.via) == ("read", Via.HOOK)
    log = access_log(folder)
    if running:
        assert f"GET /v1/agents/{me.id}/inbox?" in log  # the hook's own read
        assert logged(folder, f"POST /v1/agents/{me.id}/inbox/read")  # its background's
    else:
        assert warm.probe(folder) is None and log == ""
    again = run_hook("post-tool-use", payload("post-tool-use", cwd=str(project)), env)
    assert (again.code, again.out) == (0, "")


def test_with_relaybus_daemon_0_a_hook_reads_the_file_though_a_warm_relay_runs(
    session: tuple[Relay, dict[str, str], Path],
) -> None:
    relay, env, project = session
    folder = Path(env["RELAYBUS_DIR"])
    identity = session_identity("claude", cwd=str(project), env=env)
    me = session_agent(relay, identity, register=True)
    relay.register("bob", pid=None).send(me.id, "read from the file")
    warm.ensure(folder)
    before = access_log(folder)

    run = run_hook(
        "post-tool-use",
        payload("post-tool-use", cwd=str(project)),
        {**env, "RELAYBUS_DAEMON": "0"},
    )

    assert "read from the file" in run.context()
    assert f"/v1/agents/{me.id}/inbox" not in access_log(folder)[len(before) :]
    assert os.path.exists(warm.socket_path(folder))
