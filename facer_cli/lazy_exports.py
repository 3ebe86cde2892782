"""Names a package exports, imported from their modules on first use (PEP 562).

    __getattr__, __dir__ = lazy_exports(__name__, {"Facer": "facer_cli.service.facer"}, __all__)

So `import facer_cli` (and each command) loads only the modules it touches. Imports nothing
heavy: the console script reaches it before its Ctrl-C handler is installed.
"""

from __future__ import annotations

import sys
from importlib import import_module

TYPE_CHECKING = False  # not `typing`: see facer_cli/__init__.py
if TYPE_CHECKING:
    from typing import Any, Callable


def lazy_exports(
    package: str, table: dict[str, str], names: list[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`: each name of `table` (name -> module) is
    imported when first asked for, then kept in the package's namespace."""

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return names

    return __getattr__, __dir__
