"""The state one CLI call shares: global options, the lazily opened relay, and
how errors leave the process.

Nothing here opens the store until a command asks for :attr:`App.relay`, so
``relaybus --help`` and usage errors never touch the disk; heavy modules
(SQLAlchemy, pydantic) are imported on that first use too.

Only the commands marked :func:`creates_relay` (``init``, ``migrate``,
``register``, ``run``, ``mcp``, ``tmux attach``; ``serve`` and ``hook
SessionStart`` open the store themselves) create the embedded relay when
there is none: each sets a relay up or starts one from nothing. Every other
command needs an existing relay and says "no relay here: run `relaybus init`"
(exit 2): the reads, and the writes that act on agents, messages or tasks an
empty relay cannot have (send, reply, inbox, claim, release, task updates,
heartbeat, unregister, prune).

The embedded relay is served by the warm local relay (:mod:`relaybus.client.warm`):
a command talks to it over its Unix socket (:mod:`relaybus.client.warm_backend`),
starting it when none runs, unless ``RELAYBUS_DAEMON=0``, a relay server is given,
the database is not a relay folder's, or the command is one of :data:`IN_PROCESS`.
A command that needs an existing relay and finds none starts nothing.

The hot commands (``agents``, ``send``, ``reply``, ``inbox``, ``tasks``, ``claim``,
``release``, ``heartbeat``, ``status``) go through :attr:`App.hot` instead: the same
operations answering the API's JSON, which they print (:mod:`.render` reads wire
shapes). Through the warm relay that is :mod:`relaybus.client.warm_json`, so such a
command imports no pydantic, no SDK models and no SQLAlchemy; otherwise it is the SDK
with its models dumped (:class:`Dumped`), so both print the same.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

from .._httpx import skip_httpx_cli
from ..bounds import MAX_META_DEPTH
from ..errors import InvalidInput, RelayError

if TYPE_CHECKING:
    from ..client import AgentHandle, Relay
    from ..client.warm_backend import WarmBackend
    from ..client.warm_json import JsonAgent, JsonRelay
    from ..settings import Settings

F = TypeVar("F", bound=Callable[..., Any])

WHO_ARE_YOU = "who are you? pass --as NAME or set RELAYBUS_AGENT"
#: Commands that open the embedded store in their own process, never through the
#: warm relay: they work on the database itself (``init``, ``migrate``), or they
#: are long-lived and hand the store's location on or follow its log (``watch``,
#: ``mcp``, ``run``, ``tmux``).
IN_PROCESS = frozenset({"init", "migrate", "watch", "mcp", "run", "tmux"})


class App:
    """Global options of one invocation and the relay they point at.

    ``overrides`` holds the group options that were given (``dir``,
    ``database``, ``url``, ``agent``, ``workspace``); they win over ``RELAYBUS_*``,
    and an explicit ``dir``/``database`` beats ``RELAYBUS_URL``.
    """

    def __init__(self, *, own_process: bool = False) -> None:
        #: Whether this command is the whole process (the console script), not a call
        #: of :func:`relaybus.cli.main` inside a longer-lived one: only then does
        #: opening the relay pause the garbage collector (:func:`loading`).
        self.own_process = own_process
        self.overrides: dict[str, Any] = {}
        self.epoch: int | None = None
        self.json = False
        #: Whether this command may create the embedded relay (see :func:`creates_relay`).
        self.create = False
        #: The command run (its name under ``relaybus``), once the group has parsed it.
        self.command: str | None = None
        #: Whether :func:`relaybus.cli.main` may end the process at once when the
        #: command is done (:func:`relaybus.cli.leave`): a hot command (:attr:`hot`)
        #: that is the whole process.
        self.leave_at_once = False
        self._settings: Settings | None = None
        self._relay: Relay | None = None
        self._hot: JsonRelay | None = None
        self._warm: WarmBackend | None = None

    @property
    def settings(self) -> Settings:
        """``Settings()`` from the environment with the given options applied.

        Raises:
            InvalidInput: a bad value in a ``RELAYBUS_*`` variable or a config file
                (the message names it), or an unknown key in a config file.
        """
        if self._settings is None:
            from ..settings import Settings

            updates = {k: v for k, v in self.overrides.items() if v is not None}
            local = "dir" in updates or "database" in updates
            if local and "url" in updates:
                raise InvalidInput(
                    "give a relay server (--url) or a database (--dir, --database), not both"
                )
            if "dir" in updates and "database" not in updates:
                # An explicit --dir beats RELAYBUS_DATABASE from the environment.
                updates["database"] = None
            if local:
                # ... and an explicit database beats RELAYBUS_URL.
                updates["url"] = None
            # Options are arguments: --dir also picks the relay folder whose
            # config.toml is read.
            self._settings = Settings(**updates)
        return self._settings

    @property
    def server_url(self) -> str | None:
        """The relay server this call talks to (``--url`` / ``RELAYBUS_URL``), or
        ``None`` for the embedded store."""
        return self.settings.url or None

    @property
    def relay(self) -> Relay:
        """The relay, opened on first use: the relay server of :attr:`server_url`
        (contacted at the first call), else the embedded store (migrated; created
        only by a command marked :func:`creates_relay`), through the warm local
        relay when it serves this store (see
        :func:`~relaybus.client.warm_backend.open_relay`; never for a command of
        :data:`IN_PROCESS`), else in this process. A notice line on stderr says so
        when an existing store had to be made private in this process.

        Raises:
            NoRelay: no embedded relay here, and this command does not create one.
            StoreError: the database cannot be opened, or the warm relay did not
                start. InvalidInput: bad settings.
        """
        if self._relay is None:
            if self._warm is not None:
                from ..client.relay import Relay

                self._relay = Relay(self._warm)
                return self._relay
            if self.server_url is not None:
                skip_httpx_cli()
            from ..client.warm_backend import open_relay

            with store_notices(self.json), loading(self.own_process):
                self._relay = open_relay(
                    self.settings, create=self.create, in_process=self.command in IN_PROCESS
                )
        return self._relay

    @property
    def hot(self) -> JsonRelay:
        """The relay for the hot commands (agents, send, inbox, ...), answering JSON:
        each agent, message, task or receipt as its wire shape
        (``model_dump(mode="json")``), which is what they print. Through the warm relay
        it is a :class:`~relaybus.client.warm_json.JsonRelay`, which imports neither
        pydantic nor the SDK's models; otherwise :attr:`relay` with its answers dumped.

        Raises: as :attr:`relay`.
        """
        if self._hot is None:
            self.leave_at_once = self.own_process
            if self._relay is None and not self.create and self.server_url is None:
                from ..client.warm_backend import warm_backend

                with loading(self.own_process):
                    self._warm = warm_backend(
                        self.settings, create=False, in_process=self.command in IN_PROCESS
                    )
            if self._warm is not None:
                from ..client.warm_json import JsonRelay

                self._hot = JsonRelay(self._warm)
            else:
                if self.own_process and self._relay is None and self.server_url is None:
                    from .deferred import defer_packages

                    defer_packages()  # asyncio, importlib.metadata: imported, never run
                relay = self.relay
                if self.own_process:
                    from ..client.backends import EmbeddedBackend

                    if isinstance(relay.backend, EmbeddedBackend):
                        skip_pydantic_plugins()
                self._hot = cast("JsonRelay", Dumped(relay))
        return self._hot

    def database_relay(self, command: str) -> Relay:
        """The relay, for a command that works on the database itself (``migrate``).

        Raises:
            InvalidInput: this call talks to a relay server, not to a database.
        """
        url = self.server_url
        if url is not None:
            raise InvalidInput(
                f"{command} works on the database itself, not through the relay server at "
                f"{url}: run it where the database is, or pass --database URL (or --dir)",
                url=url,
            )
        return self.relay

    @property
    def agent_id(self) -> str | None:
        """Who this call acts as (``--as`` / ``RELAYBUS_AGENT``), if anyone."""
        return self.settings.agent or None

    def _acting_as(self) -> str:
        """:attr:`agent_id`. Raises InvalidInput: no agent given."""
        name = self.agent_id
        if name is None:
            raise InvalidInput(WHO_ARE_YOU)
        return name

    def me(self) -> AgentHandle:
        """A handle acting as ``--as`` (fenced by ``--epoch`` when given).

        Raises:
            InvalidInput: no agent given. NotFound: no such agent (with close ids).
        """
        return self.relay.agent(self._acting_as(), epoch=self.epoch)

    def hot_me(self) -> JsonAgent:
        """:meth:`me` on :attr:`hot`: acting as ``--as``, answering JSON.

        Raises:
            InvalidInput: no agent given. NotFound: no such agent (with close ids).
        """
        return self.hot.agent(self._acting_as(), epoch=self.epoch)

    def close(self) -> None:
        """Close the relay if a command opened it."""
        if self._relay is not None:
            self._relay.close()
            self._relay = None
        elif self._warm is not None:
            self._warm.close()
        self._warm = self._hot = None

    # -- leaving -----------------------------------------------------------

    def fail(self, err: RelayError) -> int:
        """Report ``err`` on stderr as one line (JSON with ``--json``); returns the
        exit code (2 for bad input or not found, 1 otherwise)."""
        if self.json:
            click.echo(json.dumps(err.to_dict(), default=str), err=True)
        else:
            click.echo(f"relaybus: error: {one_line(err.message)}", err=True)
        return err.exit_code

    def fail_usage(self, err: click.ClickException) -> int:
        """Report a click error (bad option, missing argument) as one line."""
        message = one_line(err.format_message())
        ctx = getattr(err, "ctx", None)
        if isinstance(err, click.UsageError) and ctx is not None:
            message += f" (see '{ctx.command_path} --help')"
        if self.json:
            payload = {"error": "usage", "message": message}
            click.echo(json.dumps(payload), err=True)
        else:
            click.echo(f"relaybus: error: {message}", err=True)
        return err.exit_code


class Dumped:
    """An SDK object (a :class:`~relaybus.client.Relay`, an
    :class:`~relaybus.client.AgentHandle`) whose methods answer JSON, as
    :class:`~relaybus.client.warm_json.JsonRelay` does: a model as
    ``model_dump(mode="json")``, a list item by item, another object wrapped again."""

    __slots__ = ("_target",)

    def __init__(self, target: object) -> None:
        self._target = target

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not callable(value):
            return value

        @functools.wraps(value)
        def method(*args: Any, **kwargs: Any) -> Any:
            return _dumped(value(*args, **kwargs))

        return method


def _dumped(value: Any) -> Any:
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_dumped(item) for item in value]
    if value is None or isinstance(value, str | int | float | dict):
        return value
    return Dumped(value)


class HelpGroup(click.Group):
    """A group that, called without a command, prints its help on stdout and exits 0
    (click 8.2+ would print it as a usage error, squashed into one line, exit 2)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args and self.no_args_is_help and not ctx.resilient_parsing:
            click.echo(ctx.get_help(), color=ctx.color)
            ctx.exit(0)
        return super().parse_args(ctx, args)


def creates_relay(func: F) -> F:
    """Mark a command that creates the embedded relay when there is none (a command
    that can start a relay from nothing: it registers an agent, or ``init``)."""

    @functools.wraps(func)
    def command(*args: Any, **kwargs: Any) -> Any:
        get_app().create = True
        return func(*args, **kwargs)

    return command  # type: ignore[return-value]


@contextlib.contextmanager
def loading(own_process: bool) -> Iterator[None]:
    """In a process that is one command (``own_process``): while open, Python's
    cyclic garbage collector does not run; at the end, what was loaded is moved out of
    its reach (``gc.freeze``) and it runs again. Otherwise it changes nothing: a
    program that calls :func:`relaybus.cli.main` keeps its collector as it was.

    Opening the relay in this process imports SQLAlchemy, pydantic and the service
    (most of a command's time): tens of thousands of long-lived objects, which the
    collector would otherwise walk again and again as they are created (about 50 ms,
    an eighth of ``relaybus agents`` with ``RELAYBUS_DAEMON=0``), finding no garbage.
    Frozen, they are never collected, as module-level objects never are; a
    long-running command (``watch``, ``run``, ``mcp``) collects what it creates
    afterwards as usual (``gc.freeze``: "ignore them in all the future collections",
    the ``gc`` module docs). Leaves the collector alone when it was off already.
    """
    import gc

    if not (own_process and gc.isenabled()):
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def skip_pydantic_plugins() -> None:
    """Tell pydantic, in this process, not to look its plugins up
    (``PYDANTIC_DISABLE_PLUGINS=__all__``, unless that variable is set already).

    It looks them up when it builds its first model, reading the entry points of every
    installed distribution: a few percent of an in-process hot command's CPU time, for
    plugins that would watch the validation of the relay's own rows. Called once the
    embedded store is open in a process that is one hot command, which starts no other
    process afterwards (nothing inherits the variable).
    """
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")


@contextlib.contextmanager
def store_notices(as_json: bool = False) -> Iterator[None]:
    """While open, warnings of the ``relaybus.store`` loggers are printed as
    ``relaybus: notice: ...`` lines on stderr (JSON objects with ``--json``)
    instead of going through logging."""
    import logging

    from ..logs import notices

    def notice(text: str) -> None:
        click.echo(
            json.dumps({"notice": text}) if as_json else f"relaybus: notice: {text}", err=True
        )

    with notices(logging.getLogger("relaybus.store"), notice):
        yield


def one_line(text: str) -> str:
    """``text`` with its line breaks folded into spaces."""
    return " ".join(text.split())


def get_app() -> App:
    """The :class:`App` of the running command (``main()`` passes it as ``obj``)."""
    ctx = click.get_current_context()
    app = ctx.find_object(App)
    if app is None:  # invoked without main(), e.g. click's CliRunner
        app = ctx.ensure_object(App)
    return app


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        app = ctx.find_object(App) or ctx.ensure_object(App)
        app.json = True


def database_option(func: F) -> F:
    """``--database URL``: the store, a SQLAlchemy URL (``RELAYBUS_DATABASE``), passed as
    ``database``; on the command group and on ``serve``."""
    return click.option(
        "--database", metavar="URL", help="A SQLAlchemy URL; beats --dir (RELAYBUS_DATABASE)."
    )(func)


def json_option(func: F) -> F:
    """``--json``: print the objects as JSON (an array for lists) instead of text."""
    return click.option(
        "--json",
        "json_output",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_set_json,
        help="Print JSON (objects with their ids; lists as arrays) instead of text.",
    )(func)


def read_body(body: str) -> str:
    """The message body argument; ``-`` reads it from stdin (one trailing newline dropped)."""
    if body != "-":
        return body
    text = sys.stdin.read()
    return text[:-1] if text.endswith("\n") else text


def parse_meta(meta: str | None) -> dict[str, Any] | None:
    """``--meta`` text as a JSON object.

    Raises:
        InvalidInput: not JSON, JSON too deep to read, or JSON that is not an object.
    """
    if meta is None:
        return None
    try:
        value = json.loads(meta)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"--meta is not valid JSON: {exc}", option="--meta") from None
    except RecursionError:
        raise InvalidInput(
            f"--meta is nested too deeply: at most {MAX_META_DEPTH} levels", option="--meta"
        ) from None
    if not isinstance(value, dict):
        kind = JSON_KINDS.get(type(value), type(value).__name__)
        raise InvalidInput(
            f"--meta must be a JSON object like '{{\"pr\": 7}}', not {kind}", option="--meta"
        )
    return value


JSON_KINDS: dict[type, str] = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}
