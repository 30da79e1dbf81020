"""Issue 7, requirement 5: every public function and widget has a docstring with an example, and
``help(rlvision_widgets)`` gives a map of the package.

The public API is ``rlvision_widgets.__all__`` (resolved lazily) plus the ``__all__`` of each
subpackage. A callable passes when its docstring contains a doctest (``>>>``) or an
``Example`` section. Exceptions, enums and plain constants are not checked.

    .venv/bin/python -m pytest tests/test_docstrings.py -q
"""

from __future__ import annotations

import enum
import importlib
import inspect
import pydoc

import pytest

import rlvision_widgets

SUBPACKAGES = sorted(rlvision_widgets._SUBPACKAGES - {"cli"})  # the package map, less the CLI
NESTED = ["analysis.optvis"]  # subpackages of subpackages with their own public API


def _public_objects() -> list[tuple[str, object]]:
    """(qualified name, object) for every public callable, each object once."""
    out: dict[int, tuple[str, object]] = {}
    modules = [("rlvision_widgets", rlvision_widgets)]
    modules += [
        (f"rlvision_widgets.{s}", importlib.import_module(f"rlvision_widgets.{s}"))
        for s in SUBPACKAGES + NESTED
    ]
    for modname, mod in modules:
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name)
            if inspect.ismodule(obj) or not callable(obj):
                continue
            if inspect.isclass(obj) and issubclass(obj, (BaseException, enum.Enum)):
                continue
            out.setdefault(id(obj), (f"{modname}.{name}", obj))
    return sorted(out.values(), key=lambda x: x[0])


PUBLIC = _public_objects()


def _has_example(doc: str | None) -> bool:
    return bool(doc) and (">>>" in doc or "Example" in doc)


@pytest.mark.parametrize("name,obj", PUBLIC, ids=[n for n, _ in PUBLIC])
def test_public_callable_has_docstring_with_example(name: str, obj: object):
    doc = inspect.getdoc(obj)
    assert doc, f"{name} has no docstring"
    assert _has_example(doc), f"{name}: docstring has no example ('>>>' or 'Example')"


def test_help_gives_a_package_map():
    doc = rlvision_widgets.__doc__ or ""
    assert "Package map" in doc
    for sub in (*SUBPACKAGES, "cli"):
        assert sub in doc, f"the package docstring's map does not mention {sub!r}"
    text = pydoc.render_doc(rlvision_widgets, renderer=pydoc.plaintext)
    assert "Package map" in text and "Quick start" in text


def test_lazy_api_resolves():
    for name in rlvision_widgets.__all__:
        assert getattr(rlvision_widgets, name) is not None, name
