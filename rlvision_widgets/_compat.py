"""Aliases for names that moved in the 0.2 re-layout; each warns (``FutureWarning``) and goes
away in the release after 0.2.

Old module paths resolve through an import hook to their new modules, so
``from rlvision_widgets.trajectories import Trajectories`` still works (and warns). Names that
moved between modules are served by :func:`moved_names`, a module ``__getattr__``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

__all__ = ["MOVED_MODULES", "install", "moved_names"]

#: old module path -> new module path (relative to ``rlvision_widgets``)
MOVED_MODULES: dict[str, str] = {
    "trajectories": "rollouts",
    "trajectories.collect": "rollouts.collect",
    "trajectories.storage": "rollouts.storage",
    "analysis.evaluation": "rollouts.evaluate",
    "analysis.corpus": "rollouts.corpus",
    "analysis.stats": "rollouts.stats",
    "analysis.experiments": "studies",
    "analysis.failures": "studies.failures",
}
_ROOT = "rlvision_widgets"


def _warn(old: str, new: str, stacklevel: int = 3) -> None:
    warnings.warn(
        f"{old} moved to {new}; the old name goes away in the next release",
        FutureWarning,
        stacklevel=stacklevel,
    )


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, new: str):
        self.new = new

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        _warn(module.__name__, self.new, stacklevel=8)
        # the import system returns whatever sits in sys.modules under the old name
        sys.modules[module.__name__] = importlib.import_module(self.new)


class _AliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Any, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(_ROOT + "."):
            return None
        new = MOVED_MODULES.get(fullname[len(_ROOT) + 1 :])
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(f"{_ROOT}.{new}"))


def install() -> None:
    """Put the alias hook on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _AliasFinder())


def moved_names(module: str, names: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` serving ``names`` (old attribute -> ``"new.module:attr"``,
    module relative to ``rlvision_widgets``) with a warning."""

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        where, attr = names[name].split(":")
        _warn(f"{module}.{name}", f"{_ROOT}.{where}.{attr}")
        return getattr(importlib.import_module(f"{_ROOT}.{where}"), attr)

    return __getattr__
