"""The selection-method registry: every method by name. Adding a method = one module here + one line below.

Each module defines a :class:`~mona.select.methods.base.Method` subclass saying what it reads (a target? which
store modes? the texts?), its own options dataclass, how it scores or picks, and what its features mean for
explanation. ``select()``, ``explain`` and ``report`` ask the method object and never branch on its name.
"""

from __future__ import annotations

from mona.errors import MonaError
from mona.select.methods.base import Method
from mona.select.methods.bm25 import Bm25
from mona.select.methods.coverage import GreedyCoverage
from mona.select.methods.dense import Dense
from mona.select.methods.kcenter import KCenter
from mona.select.methods.longest import Longest
from mona.select.methods.mmr import Mmr
from mona.select.methods.mona import Mona
from mona.select.methods.nait import Nait
from mona.select.methods.random import Random
from mona.select.methods.sbert import Sbert
from mona.select.methods.simscale import SimScale
from mona.select.methods.tfidf import Tfidf

REGISTRY: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    """Add a method (an instance) to the registry under its ``name``; returns it."""
    if method.name in REGISTRY:
        raise MonaError(f"selection method {method.name!r} is already registered")
    REGISTRY[method.name] = method
    return method


for _cls in (Mona, Nait, GreedyCoverage, SimScale, KCenter, Mmr, Random, Longest, Tfidf, Bm25, Dense, Sbert):
    register_method(_cls())


def get_method(name: str) -> Method:
    """The registered method called ``name``; a one-line error listing the valid names otherwise."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise MonaError(f"unknown selection method {name!r}; valid methods: {', '.join(REGISTRY)}") from None


def method_names() -> tuple[str, ...]:
    return tuple(REGISTRY)


__all__ = ["REGISTRY", "Method", "get_method", "method_names", "register_method"]
