"""The hook command's own read of the unread mail (:mod:`relaybus.tools.hooks.direct`)
is a shortcut around the service: on random mail (agents with tags and channels,
direct sends, tags, broadcasts, channels, replies, tasks, read marks) it returns
exactly what the service's inbox returns for that agent, unread, oldest first,
and renders it as the hooks do. Against a real SQLite store and a real server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relaybus import Relay
from relaybus.errors import RelayError
from relaybus.models import Message
from relaybus.store import find_relay_dir
from relaybus.tools.hooks import direct, ledger
from relaybus.tools.hooks.logic import MAX_MESSAGES, peek_new, render
from tests.support.env import clean_environ
from tests.support.live import live_server

ME = "me"
OTHERS = ["ann", "bob", "cat"]
TAGS = ["web", "db"]
CHANNELS = ["ops", "dev"]
TARGETS = [ME, *OTHERS, "broadcast", "tag:web", "tag:db"]

agents = st.fixed_dictionaries(
    {
        name: st.tuples(
            st.lists(st.sampled_from(TAGS), unique=True),
            st.lists(st.sampled_from(CHANNELS), unique=True),
        )
        for name in [ME, *OTHERS]
    }
)
send = st.tuples(
    st.sampled_from(OTHERS + [ME]),  # sender
    st.sampled_from(TARGETS),
    st.none() | st.sampled_from(CHANNELS),
    st.none() | st.integers(0, 40),  # reply to the n-th message sent so far
    st.booleans(),  # claimable
    st.sampled_from(["low", "normal", "high", "urgent"]),
    st.none() | st.text(min_size=1, max_size=8),  # subject
    st.text(max_size=30) | st.just("x" * 2100),  # body (one longer than a hook shows)
)
plans = st.tuples(
    agents,
    st.lists(send, max_size=25),
    st.sets(st.integers(0, 40)),  # indexes of sent messages "me" marks read
    st.sets(st.integers(0, 40)),  # indexes of tasks finished by their sender
)


def as_mail(relay: Relay, msg: Message) -> direct.Mail:
    status = relay.task(msg.task_id).status.value if msg.task_id else None
    return direct.Mail(
        id=msg.id,
        sender=msg.sender,
        thread_id=msg.thread_id,
        channel=msg.channel,
        subject=msg.subject,
        body=msg.body,
        priority=msg.priority.value,
        task_id=msg.task_id,
        task_status=status,
        pair=msg.meta.get("pair"),
    )


def play(relay: Relay, plan: tuple[object, ...]) -> None:
    """Register the agents and make the sends, marks and task changes of ``plan``."""
    team, sends, marked, finished = plan
    assert isinstance(team, dict) and isinstance(sends, list)
    assert isinstance(marked, set) and isinstance(finished, set)
    handles = {
        name: relay.register(name, tags=tags, channels=channels, pid=None)
        for name, (tags, channels) in team.items()
    }
    sent: list[Message] = []
    for sender, to, channel, reply, claimable, priority, subject, body in sends:
        parent = sent[reply].id if reply is not None and reply < len(sent) else None
        try:
            sent.append(
                handles[sender].send(
                    to,
                    body or ".",
                    channel=channel,
                    reply_to=parent,
                    claimable=claimable,
                    priority=priority,
                    subject=subject,
                )
            )
        except RelayError:
            pass  # nobody matched, or a parent the sender may not see: nothing sent
    mine = {m.id for m in handles[ME].inbox(unread_only=True, limit=1000)}
    to_mark = [m.id for n, m in enumerate(sent) if n in marked and m.id in mine]
    if to_mark:
        handles[ME].mark_read(to_mark)
    for n, msg in enumerate(sent):
        if n in finished and msg.task_id:
            relay.update_task(msg.task_id, status="done", result="done")


def check(relay: Relay, read: object) -> None:
    """``read(skip, limit)`` (the direct read) agrees with the service on ``relay``."""
    assert callable(read)
    me = relay.agent(ME)
    unread = me.inbox(unread_only=True, newest_first=False, limit=1000)
    whole = read(set(), 1000)
    assert whole == direct.UnreadPage([as_mail(relay, m) for m in unread], 0)
    page = read(set(), MAX_MESSAGES)
    shown = unread[:MAX_MESSAGES]
    more = max(len(unread) - MAX_MESSAGES, 0)
    assert page == direct.UnreadPage([as_mail(relay, m) for m in shown], more)
    assert direct.render_mail(page.mail, more=page.more) == render(me, shown, more=more)
    skip = {m.id for m in unread[::2]}
    assert read(skip, 1000).mail == [as_mail(relay, m) for m in unread if m.id not in skip]


class Workspaces:
    """A fresh workspace per example, so one store serves them all."""

    def __init__(self) -> None:
        self.n = 0

    def next(self) -> str:
        self.n += 1
        return f"w{self.n}"


@pytest.fixture
def workspaces() -> Workspaces:
    return Workspaces()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan=plans)
def test_the_hooks_own_sqlite_read_returns_what_the_service_inbox_returns(
    tmp_path: Path, workspaces: Workspaces, plan: tuple[object, ...]
) -> None:
    workspace = workspaces.next()
    with Relay.open(dir=tmp_path / "relay", workspace=workspace) as relay:
        play(relay, plan)
        db = tmp_path / "relay" / "relay.db"
        check(
            relay, lambda skip, limit: direct.sqlite_mail(db, workspace, ME, skip=skip, limit=limit)
        )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with live_server(tmp_path_factory.mktemp("server")) as srv:
        yield srv.url


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan=plans)
def test_the_hooks_own_http_read_returns_what_the_server_inbox_returns(
    server: str, workspaces: Workspaces, plan: tuple[object, ...]
) -> None:
    workspace = "h" + workspaces.next()
    with Relay.open(url=server, workspace=workspace) as relay:
        play(relay, plan)
        check(
            relay,
            lambda skip, limit: direct.http_mail(
                server, None, workspace, ME, skip=skip, limit=limit, timeout=30.0
            ),
        )


def test_the_hooks_own_http_read_sends_the_agents_token(tmp_path: Path) -> None:
    with (
        live_server(tmp_path, admin_token="admin-secret") as srv,
        Relay.open(url=srv.url, token="admin-secret") as admin,
    ):
        token = admin.register(ME, pid=None).token
        bob = admin.register("bob", pid=None)
        sent = bob.send(ME, "for your eyes")
        assert token is not None

        found = direct.http_mail(srv.url, token, "default", ME, timeout=30.0)
        assert [m.id for m in found.mail] == [sent.id]
        with pytest.raises(OSError):  # urllib's HTTPError: 401
            direct.http_mail(srv.url, "wrong", "default", ME, timeout=30.0)


def test_no_store_reads_nothing_and_creates_nothing(tmp_path: Path) -> None:
    env = {"RELAYBUS_DIR": str(tmp_path / "relay")}

    assert direct.unread_mail(ME, env, tmp_path) == direct.UnreadPage([])
    assert list(tmp_path.iterdir()) == []


def test_records_of_printed_mail_count_only_in_a_private_folder(tmp_path: Path) -> None:
    folder = ledger.private_folder(tmp_path / "run")
    name = ledger.record_printed(folder, "sess", [3, 1])

    assert (folder / name).stat().st_mode & 0o777 == 0o600
    assert ledger.printed(folder, "sess") == ({1, 3}, [name])
    assert ledger.printed(folder, "other") == (set(), [])
    folder.chmod(0o755)  # others could have written it: it hides no mail
    assert ledger.printed(folder, "sess") == (set(), [])
    with pytest.raises(PermissionError):
        ledger.private_folder(folder)
    folder.chmod(0o700)
    ledger.forget_printed(folder, "sess", [name, "../escape.json"])
    assert ledger.printed(folder, "sess") == (set(), [])


LAYOUTS = {
    "plain folder": [],
    "plain folder with .relay": [".relay/"],
    "stray .relay above a folder": [".relay/", "a/"],
    "repository": [".git/"],
    "repository with .relay": [".git/", ".relay/"],
    "subfolder of a repository": [".git/", "a/b/"],
    "subfolder with its own .relay": [".git/", ".relay/", "a/.relay/", "a/b/"],
    "stray .relay above a repository": [".relay/", "a/.git/", "a/b/"],
    "nested repositories": [".git/", ".relay/", "a/.git/", "a/b/"],
    "nested repository with .relay": [".git/", "a/.git/", "a/.relay/", "a/b/c/"],
    "worktree (.git file)": [".relay/", "a/.git", "a/b/"],
    ".relay file, not folder": [".git/", ".relay"],
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("start", ["", "a", "a/b", "a/b/c"])
def test_the_hooks_store_lookup_agrees_with_the_library(
    tmp_path: Path, layout: str, start: str
) -> None:
    for entry in LAYOUTS[layout]:
        path = tmp_path / entry
        if entry.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("gitdir: elsewhere\n", encoding="utf-8")
    here = tmp_path / start
    here.mkdir(parents=True, exist_ok=True)

    assert direct.find_relay_dir(here) == find_relay_dir(here)
    env = clean_environ()
    assert direct.database_file(env, here) == find_relay_dir(here) / "relay.db"


def test_past_the_unread_count_limit_the_hooks_say_that_many_or_more(tmp_path: Path) -> None:
    with live_server(tmp_path) as srv, Relay.open(url=srv.url) as relay:
        me = relay.register(ME, pid=None)
        bob = relay.register("bob", pid=None)
        srv.service.send_many("bob", [{"to": ME, "body": "x"}] * 500)
        srv.service.send_many("bob", [{"to": ME, "body": "y"}] * 499)
        found = direct.http_mail(srv.url, None, "default", ME, timeout=30.0)
        assert found.more == 999 - MAX_MESSAGES and not found.at_least
        assert f"({999 - MAX_MESSAGES} more unread" in direct.render_mail(
            found.mail, more=found.more
        )
        bob.send(ME, "the thousandth")
        found = direct.http_mail(srv.url, None, "default", ME, timeout=30.0)
        assert found.more == 1000 - MAX_MESSAGES and found.at_least
        text = direct.render_mail(found.mail, more=found.more, at_least=found.at_least)
        assert f"({1000 - MAX_MESSAGES}+ more unread" in text
        # The library's hook path says the same.
        peeked = peek_new(me)
        assert peeked is not None and f"({1000 - MAX_MESSAGES}+ more unread" in peeked[0]
