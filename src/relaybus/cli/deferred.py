"""asyncio on credit: for a hot command that opens the store in its own process.

``import sqlalchemy`` imports :mod:`asyncio` (``sqlalchemy.util.concurrency`` and
``compat`` for the asyncio extension), and asyncio's package body imports all of it:
its event loops, ``ssl``, ``socket``, ``selectors``, ``subprocess`` and
``concurrent.futures``, about 3 % of an in-process ``relaybus agents`` (measured with
callgrind: 41 M of 1,410 M instructions), none of which a command on the SQLite store
runs. SQLAlchemy reads one name at import (``asyncio.iscoroutine``); everything else it
reads when an async engine runs.

:func:`defer_asyncio` puts in ``sys.modules`` the ``asyncio`` package with its body not
yet run (:class:`PendingPackage`): ``import asyncio`` gives it, its submodules import as
usual (it has the package's ``__path__``), and the first other name read from it runs
the package body in that same module (:meth:`PendingPackage.load`), then answers
from it. The stdlib's :class:`importlib.util.LazyLoader` cannot do this alone: the next
``import asyncio`` reads ``__spec__``, which runs everything at once.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

#: The package deferred, and the names read from it before its body runs, each taken
#: from the submodule that defines it (the same objects the package exports).
PACKAGE = "asyncio"
EARLY = {"iscoroutine": "coroutines", "iscoroutinefunction": "coroutines"}


class PendingPackage(types.ModuleType):
    """A package whose ``__init__`` has not run yet: the first name it lacks runs it, in
    this same module object (as :class:`importlib.util.LazyLoader` does), which then
    becomes a plain module."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.load(), name)

    def load(self) -> types.ModuleType:
        """Run the package's body here, unless done already; returns this module."""
        if type(self) is PendingPackage:
            spec = self.__spec__
            assert spec is not None and spec.loader is not None
            # First: a name read while the body runs is an ordinary missing attribute.
            self.__class__ = types.ModuleType  # type: ignore[assignment]
            try:
                spec.loader.exec_module(self)
            except BaseException:
                self.__class__ = PendingPackage
                raise
        return self


def defer_asyncio() -> bool:
    """Put :mod:`asyncio` in ``sys.modules`` with its body not run yet (see the module
    docstring); ``False`` (and nothing changed) when it is imported already or cannot
    be found."""
    if PACKAGE in sys.modules:
        return False
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.submodule_search_locations is None:
        return False
    pending = PendingPackage(PACKAGE)
    pending.__spec__ = spec
    pending.__loader__ = spec.loader
    pending.__file__ = spec.origin
    pending.__package__ = PACKAGE
    pending.__path__ = list(spec.submodule_search_locations)
    sys.modules[PACKAGE] = pending
    try:
        for attribute, submodule in EARLY.items():
            module = importlib.import_module(f"{PACKAGE}.{submodule}")
            pending.__dict__[attribute] = getattr(module, attribute)
    except BaseException:
        if sys.modules.get(PACKAGE) is pending:
            del sys.modules[PACKAGE]
        raise
    return True
