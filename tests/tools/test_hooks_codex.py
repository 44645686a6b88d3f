"""The hook commands for Codex (``relaybus hook EVENT --tool codex``), run as
real subprocesses on recorded Codex hook inputs (Claude Code's format, plus
``turn_id`` and ``permission_mode``), against a real SQLite relay."""

from __future__ import annotations

from pathlib import Path

from anyio.from_thread import start_blocking_portal

from relaybus import Relay
from relaybus.identity import session_identity, session_socket
from relaybus.tools.hooks.host import session_host
from relaybus.tools.session import session_agent
from tests.support.poll import until
from tests.tools.hookutil import hook_env, log_lines, payload, run_hook

HUNG = 30.0


def test_codex_hooks_derive_the_codex_agent_and_its_host_answers_them(
    tmp_path: Path, runtime: Path
) -> None:
    shop = tmp_path / "shop"
    shop.mkdir()
    env = hook_env(tmp_path, runtime, "sess-codex")
    identity = session_identity("codex", cwd=str(shop), env=env)
    with Relay.open(dir=tmp_path / "relay") as relay:
        me = session_agent(relay, identity, register=True)
        mail = relay.register("bob", pid=None).send(me.id, "the build is red")
        path = session_socket(identity.session, env)
        with (
            start_blocking_portal() as portal,
            portal.wrap_async_context_manager(session_host(me, identity, path=path)),
        ):
            start = run_hook(
                "session-start", payload("codex-session-start", cwd=str(shop)), env, tool="codex"
            )
            prompt = run_hook(
                "user-prompt-submit",
                payload("codex-user-prompt-submit", cwd=str(shop)),
                env,
                tool="codex",
            )

        assert start.code == 0, start.err
        assert me.id.split("-")[1:3] == ["codex", "shop"]
        context = start.context()
        assert f"as agent `{me.id}`" in context
        assert "Tags: codex, shop; capabilities: chat." in context
        assert f"#{mail.id} from bob" in context  # waiting mail, handed over at the start
        assert prompt.code == 0 and prompt.out == ""  # and only once
        assert me.unread_count() == 0
        assert log_lines(tmp_path) == []  # the host answered both


def test_a_hook_of_a_codex_session_in_another_folder_gets_its_own_mail_not_the_hosts(
    tmp_path: Path, runtime: Path
) -> None:
    """Codex's shared app-server runs every TUI session's ``relaybus mcp`` and
    hooks: sessions derive one session key, so one hook socket."""
    shop, blog = tmp_path / "shop", tmp_path / "blog"
    shop.mkdir()
    blog.mkdir()
    env = hook_env(tmp_path, runtime, "sess-shared-daemon")
    hosted = session_identity("codex", cwd=str(shop), env=env)
    other = session_identity("codex", cwd=str(blog), env=env)
    with Relay.open(dir=tmp_path / "relay") as relay:
        me = session_agent(relay, hosted, register=True)
        them = session_agent(relay, other, register=True)
        bob = relay.register("bob", pid=None)
        for_me = bob.send(me.id, "MAIL-FOR-SHOP")
        for_them = bob.send(them.id, "MAIL-FOR-BLOG")
        path = session_socket(hosted.session, env)
        with (
            start_blocking_portal() as portal,
            portal.wrap_async_context_manager(session_host(me, hosted, path=path)),
        ):
            run = run_hook(
                "user-prompt-submit",
                payload("codex-user-prompt-submit", cwd=str(blog)),
                env,
                tool="codex",
            )

        assert run.code == 0, run.err
        text = run.context()
        assert f"#{for_them.id} from bob" in text and "MAIL-FOR-BLOG" in text
        assert "MAIL-FOR-SHOP" not in text
        assert me.unread_count() == 1  # the hosted session's mail waits for it
        assert until(lambda: them.unread_count() == 0, HUNG)  # marked read in the background
        assert [m.id for m in me.inbox(unread_only=True)] == [for_me.id]
