"""Names a package loads on first use (PEP 562), so that importing the package stays cheap.

Standard library only, and not even :mod:`typing` at run time: ``relaybus/__init__.py``
uses it, and every relaybus process (each hook command) imports that.
"""

from __future__ import annotations

import importlib

# Not ``from typing import TYPE_CHECKING`` (see the module docstring).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any


def lazy_names(
    package: str, exports: Mapping[str, str], namespace: dict[str, Any]
) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports each name on first use.

    Args:
        package: the package's ``__name__`` (for messages and relative module names).
        exports: each lazily loaded name -> the module that defines it (absolute, or
            relative to ``package``).
        namespace: the package's ``globals()``: a loaded name is stored there, so
            later uses do not come back to ``__getattr__``.

    Returns:
        ``__getattr__(name)``, which raises ``AttributeError`` for a name not in
        ``exports``.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    return __getattr__
