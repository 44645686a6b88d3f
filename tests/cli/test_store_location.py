"""Where the CLI finds its relay (like git, never above the repository root), which
commands may create it, its private modes, damaged files, and ``serve``'s store and
``/metrics``: the real ``relaybus`` as a subprocess, in folders laid out per test.

The matrices (each command without a relay, each layout's reads, each kind of damage)
check what a command decides and prints, so they run in the test's process
(:func:`relaybus_here`, the console script's entry point in the same folder and
environment); ``init``, ``register`` and ``serve`` creating the relay, and one refusal,
run as processes."""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from relaybus import Relay
from tests.cli.conftest import CALL_TIMEOUT, Result, run_in_process
from tests.support.env import clean_environ
from tests.support.live import UNUSED_TLS

NO_RELAY = "relaybus: error: no relay here: run `relaybus init`"
#: Commands that need an existing relay: the reads, and writes that act on agents,
#: messages or tasks an empty relay cannot have.
NEEDS_A_RELAY = [
    "agents",
    "--as alice inbox",
    "--as alice inbox --peek",
    "thread 1",
    "status 1",
    "tasks",
    "task 1",
    "events",
    "watch",
    "tmux look alice",
    "--as alice send --to bob hello",
    "--as alice reply 1 thanks",
    "--as alice claim 1",
    "--as alice release 1",
    "--as alice task 1 --status done",
    "--as alice heartbeat",
    "--as alice unregister",
    "prune",
]
#: Processes started at once (each pays the interpreter's start-up).
AT_ONCE = 3
#: A few of them, for each location of the matrix.
READS = ["agents", "tasks", "--as alice inbox --peek"]


def clean_env(**extra: str) -> dict[str, str]:
    env = clean_environ()
    return {**env, **extra}


def start(cwd: Path, command: Sequence[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "relaybus", *command],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        encoding="utf-8",
    )


def relaybus_all(
    cwd: Path, commands: Sequence[str], env: dict[str, str] | None = None
) -> list[Result]:
    """Run ``relaybus COMMAND`` for each command in ``cwd``, :data:`AT_ONCE` at a time;
    results in order."""
    env = clean_env() if env is None else env
    results: list[Result] = []
    for first in range(0, len(commands), AT_ONCE):
        batch = commands[first : first + AT_ONCE]
        started = [(c, start(cwd, c.split(), env)) for c in batch]
        results += [_finish(c, proc) for c, proc in started]
    return results


def relaybus(cwd: Path, command: str, env: dict[str, str] | None = None) -> Result:
    return relaybus_all(cwd, [command], env)[0]


def relaybus_here(
    cwd: Path, commands: Sequence[str], env: dict[str, str] | None = None
) -> list[Result]:
    """:func:`relaybus_all` in the test's process (see :func:`run_in_process`)."""
    env = clean_env() if env is None else env
    return [Result(c, *run_in_process(c.split(), cwd, env)) for c in commands]


def _finish(command: str, proc: subprocess.Popen[str]) -> Result:
    try:
        out, err = proc.communicate(timeout=CALL_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return Result(command, proc.returncode, out, err)


def relay_folders(root: Path) -> set[Path]:
    return {p for p in root.rglob(".relay") if p.is_dir()}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def make_relay(folder: Path) -> None:
    """A relay with alice in ``folder`` (through the SDK)."""
    with Relay.open(dir=folder) as relay:
        relay.register("alice")


def assert_no_relay(results: list[Result]) -> None:
    for result in results:
        assert result.code == 2, result
        assert result.out == "", result
        assert result.err_lines == [NO_RELAY], result


# -- which commands create -----------------------------------------------------------


def test_commands_that_need_a_relay_never_create_one_and_say_so(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "src").mkdir()

    assert_no_relay(relaybus_here(repo / "src", NEEDS_A_RELAY))
    assert relay_folders(tmp_path) == set()

    # --json: the same refusal as one JSON line, exit 2 (from a real process).
    refused = relaybus(repo / "src", "--json agents")
    assert refused.code == 2 and refused.out == "", refused
    assert len(refused.err_lines) == 1 and '"no relay here' in refused.err, refused
    assert relay_folders(tmp_path) == set()


@pytest.mark.slow
def test_init_creates_a_private_relay_at_the_repository_root_with_a_gitignore(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "src").mkdir()

    init = relaybus(repo / "src", "init")
    register = relaybus(repo / "src", "register alice")
    agents = relaybus(repo, "agents --json")

    folder = repo / ".relay"
    assert init.code == 0 and init.err == "", init
    assert init.out.startswith(f"initialized relay at {folder / 'relay.db'} "), init
    assert register.code == 0 and agents.code == 0, (register, agents)
    assert [a["id"] for a in agents.json()] == ["alice"]
    assert relay_folders(tmp_path) == {folder}
    assert mode(folder) == 0o700
    assert {p.name: mode(p) for p in folder.iterdir()} == {".gitignore": 0o600, "relay.db": 0o600}
    assert (folder / ".gitignore").read_text(encoding="utf-8") == "*\n"
    git_ignored = subprocess.run(
        ["git", "status", "--porcelain", "--ignored", "--untracked-files=all"],
        cwd=repo,
        capture_output=True,
        encoding="utf-8",
        check=False,
    )
    if git_ignored.returncode == 0:  # git is installed: it sees nothing of the relay to add
        assert ".relay" not in git_ignored.stdout.replace("!! .relay/", "")


@pytest.mark.slow
def test_register_creates_the_relay_and_init_adds_a_missing_gitignore(tmp_path: Path) -> None:
    register = relaybus(tmp_path, "register alice")
    assert register.code == 0, register
    assert (tmp_path / ".relay" / ".gitignore").exists()
    (tmp_path / ".relay" / ".gitignore").unlink()  # as a relay of an older relaybus

    init = relaybus(tmp_path, "init")

    assert init.code == 0, init
    assert (tmp_path / ".relay" / ".gitignore").read_text(encoding="utf-8") == "*\n"
    assert relaybus(tmp_path, "agents").code == 0


# -- the location matrix ---------------------------------------------------------------


def nested_repositories(root: Path) -> tuple[Path, Path, dict[str, str]]:
    (root / ".git").mkdir()
    make_relay(root / ".relay")
    inner = root / "vendor" / "lib"
    (inner / ".git").mkdir(parents=True)
    (inner / "src").mkdir()
    return inner / "src", inner / ".relay", {}


def stray_relay_above_a_repository(root: Path) -> tuple[Path, Path, dict[str, str]]:
    make_relay(root / ".relay")  # say, `cd / && relaybus register x` once
    repo = root / "work" / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "pkg").mkdir()
    return repo / "pkg", repo / ".relay", {}


def outside_any_repository(root: Path) -> tuple[Path, Path, dict[str, str]]:
    make_relay(root / ".relay")
    here = root / "notes" / "today"
    here.mkdir(parents=True)
    return here, here / ".relay", {}


def worktree_with_a_git_file(root: Path) -> tuple[Path, Path, dict[str, str]]:
    make_relay(root / ".relay")
    tree = root / "wt"
    tree.mkdir()
    (tree / ".git").write_text(f"gitdir: {root / 'main' / '.git' / 'worktrees' / 'wt'}\n")
    (tree / "src").mkdir()
    return tree / "src", tree / ".relay", {}


def relaybus_dir(root: Path) -> tuple[Path, Path, dict[str, str]]:
    (root / ".git").mkdir()
    make_relay(root / ".relay")
    chosen = root / "elsewhere" / "relay-folder"
    return root, chosen, {"RELAYBUS_DIR": str(chosen)}


@pytest.mark.parametrize(
    "layout",
    [
        nested_repositories,
        stray_relay_above_a_repository,
        outside_any_repository,
        worktree_with_a_git_file,
        relaybus_dir,
    ],
    ids=lambda f: f.__name__,
)
def test_the_relay_is_found_like_git_and_only_init_creates_it(
    tmp_path: Path, layout: Callable[[Path], tuple[Path, Path, dict[str, str]]]
) -> None:
    cwd, expected, extra = layout(tmp_path)
    env = clean_env(**extra)
    before = relay_folders(tmp_path)

    assert_no_relay(relaybus_here(cwd, READS, env))
    assert relay_folders(tmp_path) == before  # no read created anything
    assert not expected.exists()

    init = relaybus(cwd, "--json init", env)
    [agents] = relaybus_here(cwd, ["agents --json"], env)

    assert init.code == 0, init
    assert init.json()["path"] == str(expected / "relay.db")
    assert agents.code == 0 and agents.json() == [], agents  # a new relay: not the one above
    assert mode(expected) == 0o700 and mode(expected / "relay.db") == 0o600


# -- modes of an existing relay ---------------------------------------------------------


def test_an_existing_relay_others_could_read_is_made_private_with_one_notice(
    tmp_path: Path,
) -> None:
    folder = tmp_path / ".relay"
    make_relay(folder)
    os.chmod(folder, 0o755)
    os.chmod(folder / "relay.db", 0o644)

    first, second = relaybus_here(tmp_path, ["agents", "agents"])

    assert first.code == 0 and "alice" in first.out, first
    assert len(first.err_lines) == 1, first
    assert first.err_lines[0].startswith(f"relaybus: notice: made the relay at {folder} private")
    assert "relay.db 0644" in first.err and ".relay 0755" in first.err
    assert mode(folder) == 0o700 and mode(folder / "relay.db") == 0o600
    assert second.code == 0 and second.err == "", second


# -- files that are not a relay --------------------------------------------------------


def garbage_pages(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[4096:] = os.urandom(len(data) - 4096)
    path.write_bytes(bytes(data))


def not_sqlite(path: Path) -> None:
    path.write_text("# my notes\n" * 20, encoding="utf-8")


def empty(path: Path) -> None:
    path.write_bytes(b"")


@pytest.mark.parametrize("damage", [garbage_pages, not_sqlite, empty], ids=lambda f: f.__name__)
def test_a_damaged_relay_is_one_line_and_doctor_advises_what_works(
    tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    folder = tmp_path / ".relay"
    with Relay.open(dir=folder) as relay:
        for n in range(30):
            relay.register(f"agent-{n}", label="x" * 100)
    path = folder / "relay.db"
    damage(path)
    before = path.read_bytes()

    agents, register, init, migrate, doctor = relaybus_here(
        tmp_path, ["agents", "register carol", "init", "migrate", "doctor"]
    )

    for result in (agents, register, init, migrate):
        assert result.code == 1 and result.out == "", result
        assert len(result.err_lines) == 1, result
        assert str(path) in result.err and "relaybus init" in result.err, result
        assert "internal error" not in result.err and "migrate" not in result.err, result
    assert doctor.code == 1, doctor
    relay_line, fix = doctor.out.splitlines()[:2]
    assert relay_line.startswith("✗ relay: "), doctor
    assert fix.strip().startswith("fix: restore"), doctor
    assert f"mv {path} {path}.broken && relaybus init" in fix
    assert "migrate" not in fix
    assert path.read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == [".gitignore", "relay.db"]


# -- the runtime folder -----------------------------------------------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_a_runtime_folder_of_another_user_is_one_line_error(tmp_path: Path) -> None:
    make_relay(tmp_path / ".relay")
    base = Path(tempfile.mkdtemp(prefix="rbc-", dir="/tmp"))
    try:
        runtime = base / f"relaybus-{os.getuid()}"
        runtime.mkdir(mode=0o700)
        os.chown(runtime, 4242, -1)

        result = relaybus(tmp_path, "agents", clean_env(RELAYBUS_TMPDIR=str(base)))
    finally:
        shutil.rmtree(base)

    assert result.code == 1 and result.out == "", result
    assert len(result.err_lines) == 1, result
    assert "belongs to another user (uid 4242)" in result.err


# -- serve ------------------------------------------------------------------------------


class Serving:
    """A running ``relaybus serve``; :meth:`expect` waits for an output line."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, prefix: str) -> str:
        while (line := self.lines.get(timeout=CALL_TIMEOUT)) is not None:
            self.output.append(line)
            if line.startswith(prefix):
                return line
        raise AssertionError(f"exited without {prefix!r}:\n" + "\n".join(self.output))


@contextlib.contextmanager
def serving(cwd: Path, *args: str) -> Iterator[Serving]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "relaybus", "serve", "--port", "0", *args],
        cwd=cwd,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        encoding="utf-8",
    )
    try:
        yield Serving(proc)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(CALL_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(CALL_TIMEOUT)
        assert proc.stdout is not None
        proc.stdout.close()


def test_serve_creates_a_private_relay_and_its_metrics_need_a_token(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    admin = {"Authorization": "Bearer admin-secret"}
    with serving(project, "--token", "admin-secret", "--metrics-token", "scrape-secret") as srv:
        announcement = srv.expect("relaybus: serving ")
        url = announcement.split()[2]
        with httpx.Client(base_url=url, timeout=CALL_TIMEOUT, verify=UNUSED_TLS) as http:
            alice = http.post("/v1/agents", json={"id": "alice"}, headers=admin)
            http.post("/v1/agents", json={"id": "bob"}, headers=admin)
            sent = http.post(
                "/v1/messages", json={"sender": "alice", "to": "bob", "body": "hi"}, headers=admin
            )
            folder = project / ".relay"
            modes = {p.name: mode(p) for p in folder.iterdir()}  # while the server writes
            agent = {"Authorization": f"Bearer {alice.json()['token']}"}
            without = http.get("/metrics")
            as_agent = http.get("/metrics", headers=agent)
            wrong = http.get("/metrics", headers={"Authorization": "Bearer nope"})
            scraper = http.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
            as_admin = http.get("/metrics", headers=admin)
            scraper_elsewhere = http.get(
                "/v1/agents", headers={"Authorization": "Bearer scrape-secret"}
            )

    assert sent.status_code == 201, sent.text
    assert "/metrics needs the metrics or the admin token" in announcement
    assert mode(folder) == 0o700
    assert modes == {
        ".gitignore": 0o600,
        "relay.db": 0o600,
        "relay.db-wal": 0o600,
        "relay.db-shm": 0o600,
    }
    for refused in (without, as_agent, wrong):
        assert refused.status_code == 401, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert "RELAYBUS_METRICS_TOKEN" in refused.json()["detail"]
    for allowed in (scraper, as_admin):
        assert allowed.status_code == 200
        assert "relaybus_messages_sent_total 1.0" in allowed.text
    assert scraper_elsewhere.status_code == 401
