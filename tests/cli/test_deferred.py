"""asyncio and importlib.metadata put in ``sys.modules`` before their body runs
(:mod:`relaybus.cli.deferred`): SQLAlchemy and pydantic import without running them,
and the first real use runs them, in place, and works.

Each case runs in a fresh interpreter: the deferral changes ``sys.modules``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

#: Generous: a fresh interpreter importing SQLAlchemy on a loaded CI machine.
TIMEOUT = 60.0


def run(code: str) -> list[str]:
    """Run ``code`` in a fresh interpreter; its stdout lines."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        encoding="utf-8",
        timeout=TIMEOUT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_sqlalchemy_imports_without_running_asyncio_and_asyncio_runs_on_first_use() -> None:
    lines = run(
        """
        import sys
        from relaybus.cli.deferred import defer

        print(defer("asyncio"))
        import sqlalchemy
        from sqlalchemy.util import concurrency

        held = concurrency.asyncio  # what SQLAlchemy holds: the pending package
        print("asyncio.base_events" in sys.modules, "ssl" in sys.modules)

        import asyncio

        async def answer():
            await asyncio.sleep(0)
            return 42

        print(asyncio.run(answer()))
        real = sys.modules["asyncio"]
        print(real is held is asyncio, type(real).__name__)
        print(concurrency.iscoroutine is real.iscoroutine, real.Future is asyncio.futures.Future)
        print(defer("asyncio"))
        """
    )

    assert lines == ["True", "False False", "42", "True module", "True True", "False"]


def test_a_name_read_from_the_pending_package_runs_it_once() -> None:
    lines = run(
        """
        import sys
        from relaybus.cli.deferred import defer

        defer("asyncio")
        import asyncio

        pending = asyncio
        loop = asyncio.new_event_loop()  # runs the package body
        loop.close()
        real = sys.modules["asyncio"]
        import asyncio

        print(asyncio is real is pending, "asyncio.base_events" in sys.modules)
        print(real.coroutines is sys.modules["asyncio.coroutines"], len(real.__all__) > 50)
        """
    )

    assert lines == ["True True", "True True"]


def test_nothing_is_deferred_once_asyncio_is_imported() -> None:
    lines = run(
        """
        import asyncio, sys
        from relaybus.cli.deferred import defer

        print(defer("asyncio"), sys.modules["asyncio"] is asyncio)
        """
    )

    assert lines == ["False True"]


def test_importlib_metadata_is_imported_without_running_and_works_on_first_call() -> None:
    lines = run(
        """
        import os, sys
        os.environ["PYDANTIC_DISABLE_PLUGINS"] = "__all__"
        from relaybus.cli.deferred import defer_packages

        print(defer_packages())
        import sqlalchemy, pydantic
        from pydantic.plugin._loader import entry_points, get_plugins

        class Row(pydantic.BaseModel):
            n: int

        print(Row(n=1).n, list(get_plugins()), "email" in sys.modules, "zipfile" in sys.modules)
        import importlib.metadata as metadata

        # the first call of the early name runs the package, which then answers itself
        found = entry_points(group="console_scripts")
        print(any(point.name == "relaybus" for point in found), "email" in sys.modules)
        print(metadata is sys.modules["importlib.metadata"], type(metadata).__name__)
        print(metadata.version("relaybus") == __import__("relaybus").__version__)
        """
    )

    assert lines == [
        "['asyncio', 'importlib.metadata']",
        "1 [] False False",
        "True True",
        "True module",
        "True",
    ]
