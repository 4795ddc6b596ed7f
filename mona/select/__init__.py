"""Selection stage: choose a subset of the pool from its embeddings (SAE codes, dense states, layer activations)
or its texts, toward a target or for diversity. See docs/select.md.

    from mona.select import SelectConfig, select, load_selection
    sel = select("stores/pool", target="stores/math", config=SelectConfig(method="mona", n=1000),
                 pool_samples=pool)
    sel.save("out/math")
"""

from mona.select.api import FEATURE_SEMANTICS, select
from mona.select.config import METHODS, SAE_METHODS, TARGET_METHODS, TEXT_METHODS, SelectConfig
from mona.select.inputs import ArrayStore, check_compatible
from mona.select.selection import Selection, load_selection

__all__ = [
    "FEATURE_SEMANTICS",
    "METHODS",
    "SAE_METHODS",
    "TARGET_METHODS",
    "TEXT_METHODS",
    "ArrayStore",
    "SelectConfig",
    "Selection",
    "check_compatible",
    "load_selection",
    "select",
]
