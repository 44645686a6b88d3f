"""Packages on credit: for a hot command that opens the store in its own process.

Two standard-library packages are imported on that path and never used by it:

- :mod:`asyncio`, imported by ``import sqlalchemy`` (``sqlalchemy.util.concurrency``
  and ``compat``, for the asyncio extension). Its package body imports all of it: its
  event loops, ``ssl``, ``selectors``, ``subprocess`` and ``concurrent.futures``. About
  3 % of an in-process ``relaybus agents`` (callgrind: 41 M of 1,410 M instructions).
  SQLAlchemy reads one name at import (``asyncio.iscoroutine``); everything else it
  reads when an async engine runs.
- :mod:`importlib.metadata`, imported by SQLAlchemy (``compat``, ``langhelpers``, for
  its plugin entry points) and by pydantic's plugin lookup (``from importlib.metadata
  import entry_points``), which the command turns off
  (:func:`relaybus.cli.app.skip_pydantic_plugins`). Its body imports ``email``,
  ``zipfile``, ``csv`` and more: about 4 % (53 M instructions).

:func:`defer_packages` puts each in ``sys.modules`` with its body not yet run
(:class:`PendingPackage`): ``import asyncio`` gives it, its submodules import as usual
(it has the package's ``__path__``), and the first other name read from it runs the
package body in that same module object (:meth:`PendingPackage.load`), which then
answers as the package. The stdlib's :class:`importlib.util.LazyLoader` cannot do this
alone: the next ``import asyncio`` reads ``__spec__``, which runs everything at once.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from collections.abc import Callable
from typing import Any

#: Each deferred package, with the names read from it before its body runs: the
#: submodule defining the name (read from there: the very object the package exports),
#: or ``""`` for a function that calls the package's own, running the body first.
DEFERRED: dict[str, dict[str, str]] = {
    "asyncio": {"iscoroutine": "coroutines", "iscoroutinefunction": "coroutines"},
    "importlib.metadata": {"entry_points": ""},
}


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


def defer_packages() -> list[str]:
    """Defer each package of :data:`DEFERRED` (see the module docstring) that is not
    imported yet; returns the names deferred."""
    return [name for name in DEFERRED if defer(name)]


def defer(name: str) -> bool:
    """Put package ``name`` (one of :data:`DEFERRED`) in ``sys.modules`` with its body
    not run yet, and as the attribute of its parent package; ``False`` (and nothing
    changed) when it is imported already or is not a package."""
    if name in sys.modules:
        return False
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return False
    pending = PendingPackage(name)
    pending.__spec__ = spec
    pending.__loader__ = spec.loader
    pending.__file__ = spec.origin
    pending.__package__ = name
    pending.__path__ = list(spec.submodule_search_locations)
    sys.modules[name] = pending
    try:
        for attribute, submodule in DEFERRED[name].items():
            if submodule:
                module = importlib.import_module(f"{name}.{submodule}")
                pending.__dict__[attribute] = getattr(module, attribute)
            else:
                pending.__dict__[attribute] = forward(pending, attribute)
    except BaseException:
        if sys.modules.get(name) is pending:
            del sys.modules[name]
        raise
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, pending)
    return True


def forward(pending: PendingPackage, name: str) -> Callable[..., Any]:
    """A function that calls ``pending``'s function ``name`` (running its body first)."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(pending.load(), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"{pending.__name__}.{name}, once that package has loaded."
    return call
