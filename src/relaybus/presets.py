"""How to start each agent CLI: its flags for a model, an approval mode, an initial
task and non-interactive use (the presets), and a preflight check that it is there.

Each preset is written from the CLI's own ``--help`` at the version named in
:data:`PRESETS` (Claude Code 2.1.197, Codex CLI 0.171.0, Gemini CLI 0.61.0, opencode
1.18.33, the npm package ``opencode-ai``):

============  =================  ==========================  ==================================
CLI           model              task, interactive           headless (task as the prompt)
============  =================  ==========================  ==================================
``claude``    ``--model M``      ``claude TASK``             ``claude -p TASK``
``codex``     ``--model M``      ``codex --no-daemon TASK``  ``codex exec TASK``
``gemini``    ``--model M``      ``gemini                    ``gemini --prompt TASK``
                                 --prompt-interactive TASK``
``opencode``  ``--model P/M``    ``opencode --prompt TASK``  ``opencode run TASK``
============  =================  ==========================  ==================================

Approval modes (:data:`relaybus.profiles.APPROVAL_MODES`) only ever take rights away:
``open`` adds no flag (the CLI's own settings decide), ``guarded`` makes the CLI ask a
person before it edits a file or runs a command, ``read-only`` lets it read and plan
only. Headless, nobody is there to ask, so ``guarded`` denies what it would have asked
about (Claude Code's ``dontAsk``; Codex's read-only sandbox, as for ``read-only``):

============  ====================================  ===================================
CLI           guarded                               read-only
============  ====================================  ===================================
``claude``    ``--permission-mode default``         ``--permission-mode plan``
              (headless: ``dontAsk``)
``codex``     ``--sandbox read-only                 ``--sandbox read-only
              --ask-for-approval on-request``       --ask-for-approval never``
              (headless: ``never``)
``gemini``    ``--approval-mode default``           ``--approval-mode plan``
``opencode``  no flag: an error (set ``permission``  ``--agent plan``
              in its ``opencode.json``)
============  ====================================  ===================================

Codex's approval flags are its top-level options, so they come before ``exec``
(as :mod:`relaybus.runtime.approval` puts them for ``relaybus run -- codex``).
An interactive Codex gets ``--no-daemon``: its session then runs in its own process,
with the environment that names the agent (``RELAYBUS_AGENT``), not in a shared
background server started elsewhere (docs/codex.md); ``codex exec`` runs in its own
process anyway.
A task that starts with ``-`` follows ``--`` (or is given as ``--prompt=TASK``), so
that the CLI does not read it as an option.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from .errors import InvalidInput
from .models import Preflight
from .profiles import APPROVAL_MODES

#: Codex's flags per approval mode: (the sandbox, the approval policy); None: no flag.
#: ``relaybus run -- codex`` sets them too (:mod:`relaybus.runtime.approval`).
CODEX_POLICY: dict[str, tuple[str | None, str | None]] = {
    "open": (None, None),
    "guarded": ("read-only", "on-request"),
    "read-only": ("read-only", "never"),
}

#: The preset CLIs ``--cli`` accepts.
CLIS = ("claude", "codex", "gemini", "opencode")
#: Seconds ``CLI --version`` may take in :func:`preflight`.
PREFLIGHT_SECONDS = 10.0
#: A version number in ``--version``'s answer (``2.1.197 (Claude Code)``,
#: ``codex-cli 0.171.0``).
_VERSION = re.compile(r"\d+(?:\.\d+)+[0-9A-Za-z.+-]*")


@dataclass(frozen=True)
class Preset:
    """How to start one agent CLI.

    Attributes:
        cli: the preset's name (``--cli``) and the program run.
        version: the CLI version whose ``--help`` the flags come from.
        model: the option that picks the model (followed by the model).
        interactive: the arguments of an interactive session, right after the program.
        interactive_task: the option that gives the first task to an interactive
            session (``None``: the task is the last argument).
        headless: the arguments of non-interactive use, right after the program.
        headless_task: the option that gives the task headless (``None``: the task is
            the last argument).
        approval: per approval mode, the flags of an interactive session.
        headless_approval: per approval mode, the flags of headless use (where they
            differ from ``approval``).
        before_headless: whether the approval flags come before :attr:`headless`
            (top-level options of a CLI whose headless form is a subcommand).
        no_flag: per approval mode the CLI has no flag for, why (an error).
    """

    cli: str
    version: str
    model: str = "--model"
    interactive: tuple[str, ...] = ()
    interactive_task: str | None = None
    headless: tuple[str, ...] = ()
    headless_task: str | None = None
    approval: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    headless_approval: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    before_headless: bool = False
    no_flag: Mapping[str, str] = field(default_factory=dict)

    def approval_flags(self, approval: str | None, *, headless: bool) -> list[str]:
        """The flags of approval mode ``approval`` (None or ``open``: none).

        Raises:
            InvalidInput: not an approval mode, or one this CLI has no flag for.
        """
        if approval is None or approval == "open":
            return []
        if approval not in APPROVAL_MODES:
            raise InvalidInput(
                f"approval is open, guarded or read-only, not {approval!r}", approval=approval
            )
        if approval in self.no_flag:
            raise InvalidInput(self.no_flag[approval], cli=self.cli, approval=approval)
        flags = self.headless_approval.get(approval) if headless else None
        return list(flags if flags is not None else self.approval.get(approval, ()))


def _codex_flags(sandbox: str | None, policy: str | None) -> tuple[str, ...]:
    flags: tuple[str, ...] = ()
    if sandbox is not None:
        flags += ("--sandbox", sandbox)
    if policy is not None:
        flags += ("--ask-for-approval", policy)
    return flags


#: Every preset by name, in the order of :data:`CLIS`.
PRESETS: dict[str, Preset] = {
    "claude": Preset(
        cli="claude",
        version="2.1.197",
        headless=("-p",),
        approval={
            "guarded": ("--permission-mode", "default"),
            "read-only": ("--permission-mode", "plan"),
        },
        headless_approval={"guarded": ("--permission-mode", "dontAsk")},
    ),
    "codex": Preset(
        cli="codex",
        version="0.171.0",
        interactive=("--no-daemon",),
        headless=("exec",),
        approval={mode: _codex_flags(*policy) for mode, policy in CODEX_POLICY.items()},
        headless_approval={"guarded": _codex_flags("read-only", "never")},
        before_headless=True,
    ),
    "gemini": Preset(
        cli="gemini",
        version="0.61.0",
        interactive_task="--prompt-interactive",
        headless_task="--prompt",
        approval={
            "guarded": ("--approval-mode", "default"),
            "read-only": ("--approval-mode", "plan"),
        },
    ),
    "opencode": Preset(
        cli="opencode",
        version="1.18.33",
        interactive_task="--prompt",
        headless=("run",),
        approval={"read-only": ("--agent", "plan")},
        no_flag={
            "guarded": "opencode has no flag for approval mode guarded: set "
            '"permission": {"edit": "ask", "bash": "ask"} in its opencode.json, '
            "or use --approval read-only (its plan agent)"
        },
    ),
}


def preset(cli: str) -> Preset:
    """The preset named ``cli``.

    Raises:
        InvalidInput: no such preset (the message lists them).
    """
    found = PRESETS.get(cli)
    if found is None:
        raise InvalidInput(
            f"no preset for {cli!r}: --cli is one of {', '.join(CLIS)} "
            "(any other program: -- CMD ARGS...)",
            cli=cli,
        )
    return found


def _task_args(task: str, option: str | None) -> list[str]:
    """The task as the CLI's prompt argument: ``[task]`` or ``[option, task]``, each
    element the task itself (the supervisor sees the CLI took it); one that starts with
    ``-`` after ``--``, or as ``option=task``, so it is not read as an option."""
    if option is None:
        return ["--", task] if task.startswith("-") else [task]
    return [f"{option}={task}"] if task.startswith("-") else [option, task]


def build_command(
    cli: str,
    *,
    model: str | None = None,
    task: str | None = None,
    headless: bool = False,
    approval: str | None = None,
    args: Sequence[str] = (),
) -> list[str]:
    """The argv that starts ``cli`` (one of :data:`CLIS`) with these settings:
    ``[program, *headless form, *model flag, *approval flags, *args, *task]`` (Codex's
    approval flags before ``exec``). ``args`` are more of the CLI's own options.

    Args:
        model: the model, as the CLI names it (opencode: ``provider/model``).
        task: the first task: typed into an interactive session by the CLI itself
            (its prompt argument), or the prompt of a headless run.
        headless: the CLI's non-interactive form, which runs ``task`` once and exits.
        approval: ``open``, ``guarded`` or ``read-only`` (see the module docstring).

    Raises:
        InvalidInput: an unknown CLI or approval mode, an approval mode the CLI has no
            flag for, headless without a task, an empty model or task.
    """
    found = preset(cli)
    if model is not None and not model.strip():
        raise InvalidInput("the model is empty", cli=cli)
    if task is not None and not task.strip():
        raise InvalidInput("the task is empty", cli=cli)
    if headless and task is None:
        raise InvalidInput(
            f"headless {cli} needs a task: the prompt it runs once (--task TEXT)", cli=cli
        )
    flags = found.approval_flags(approval, headless=headless)
    argv = [found.cli]
    if headless and found.before_headless:
        argv += [*flags, *found.headless]
        flags = []
    elif headless:
        argv += found.headless
    else:
        argv += found.interactive
    if model is not None:
        argv += [found.model, model]
    argv += [*flags, *args]
    if task is not None:
        argv += _task_args(task, found.headless_task if headless else found.interactive_task)
    return argv


def preflight(
    clis: Iterable[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = PREFLIGHT_SECONDS,
) -> list[Preflight]:
    """Whether each CLI is on ``env``'s PATH (default: this process's environment) and
    answers ``--version`` within ``timeout`` seconds, in the order given.

    The ``--version`` calls run side by side, with ``env`` as their environment and no
    input. ``version`` is the version number of the answer (its first line when it has
    none); ``error`` says why a CLI is not ``ok``: not a preset, not found on PATH, not
    answering in time, or exiting with an error (its last line).
    """
    environ = dict(os.environ if env is None else env)
    path = environ.get("PATH", os.defpath)
    checks: list[tuple[str, str | None, subprocess.Popen[bytes] | str]] = []
    for cli in clis:
        if cli not in PRESETS:
            checks.append((cli, None, f"no preset for {cli!r} (one of {', '.join(CLIS)})"))
            continue
        found = shutil.which(PRESETS[cli].cli, path=path)
        if found is None:
            checks.append((cli, None, f"{cli} is not on PATH ({path or 'empty'})"))
            continue
        try:
            process = subprocess.Popen(
                [found, "--version"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=environ,
                start_new_session=True,
            )
        except OSError as exc:
            checks.append((cli, found, f"cannot run {found}: {exc.strerror or exc}"))
            continue
        checks.append((cli, found, process))
    deadline = time.monotonic() + timeout
    return [_answer(cli, found, check, deadline, timeout) for cli, found, check in checks]


def _answer(
    cli: str,
    found: str | None,
    check: subprocess.Popen[bytes] | str,
    deadline: float,
    timeout: float,
) -> Preflight:
    """The :class:`Preflight` of one check: an error already known, or the answer of
    its ``--version`` process (killed, with its process group, once past ``deadline``)."""
    if isinstance(check, str):
        return Preflight(cli=cli, ok=False, path=found, error=check)
    try:
        out, _ = check.communicate(timeout=max(deadline - time.monotonic(), 0.0))
    except subprocess.TimeoutExpired:
        _kill(check)
        return Preflight(
            cli=cli,
            ok=False,
            path=found,
            error=f"{cli} --version did not answer in {timeout:g} s",
        )
    lines = [line.strip() for line in out.decode("utf-8", "replace").splitlines()]
    lines = [line for line in lines if line]
    if check.returncode != 0:
        last = lines[-1] if lines else "no output"
        return Preflight(
            cli=cli,
            ok=False,
            path=found,
            error=f"{cli} --version exited with code {check.returncode}: {last}",
        )
    if not lines:
        return Preflight(cli=cli, ok=False, path=found, error=f"{cli} --version printed nothing")
    number = _VERSION.search(lines[0])
    return Preflight(cli=cli, ok=True, path=found, version=number.group() if number else lines[0])


def _kill(process: subprocess.Popen[bytes]) -> None:
    """Kill ``process`` and its process group (a node CLI's children), then reap it
    and close its pipe."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.communicate()
