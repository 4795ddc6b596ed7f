"""Selection stage: choose a subset of the pool from its embedding stores (SAE codes, dense or sentence vectors,
layer activations) or its texts, toward a target or for diversity. See docs/select.md.

    from mona.select import SelectConfig, select, load_selection
    sel = select("stores/pool", target="stores/math", method="mona", n=1000, similarity="cosine",
                 pool_samples=pool)
    sel.save("out/math")

Methods live in a registry (:mod:`mona.select.methods`): one module each, with its own options dataclass.
"""

from mona.select.api import select
from mona.select.config import SelectConfig
from mona.select.inputs import ArrayStore, check_compatible
from mona.select.methods import REGISTRY, get_method, method_names, register_method
from mona.select.selection import Selection, load_selection

METHODS: tuple[str, ...] = method_names()

__all__ = [
    "METHODS",
    "REGISTRY",
    "ArrayStore",
    "SelectConfig",
    "Selection",
    "check_compatible",
    "get_method",
    "load_selection",
    "register_method",
    "select",
]
