"""Import a module on first attribute access, to keep DAG parsing cheap.

Operators and sensors are imported by every DAG file that uses them, at every parse; the hook, the
request builders and the pydantic models are only needed when a task runs. ``lazy_module(name)``
stands in for the module until then (type checkers see the real module through TYPE_CHECKING).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class _LazyModule:
    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attribute)


def lazy_module(name: str) -> Any:
    return _LazyModule(name)
