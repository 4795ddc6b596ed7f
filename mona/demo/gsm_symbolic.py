"""Math from reasoning-gym's ``gsm_symbolic``: GSM8K-style word problems generated from templates.

The templates are split once, by a fixed shuffle, into a pool half and a target half, so the math target never
shares a template with the pool or the SAE corpus. The generator functions are code, so they are run: their two
files (and the stdlib-only ``reasoning_gym/utils.py`` they import from) are executed on their own with
:func:`~mona.demo.packages.exec_source_file`, never through ``import reasoning_gym`` and its heavy ``__init__``.
"""

from __future__ import annotations

import ast
import functools
import random
from collections.abc import Callable, Iterator

from mona.demo.packages import exec_source_file, package_dir
from mona.demo.records import record, stable_hash

GSM_SPLIT_SEED = 20250101  # fixed shuffle that splits gsm_symbolic templates into pool and target halves
MAX_PER_TEMPLATE = 10_000  # problems one template's stream yields at most


@functools.lru_cache(maxsize=1)
def gsm_generators() -> dict[int, Callable]:
    """Template number -> ``generate_<n>(rng, difficulty)`` for the templates gsm_symbolic marks as working."""
    root = package_dir("reasoning_gym")
    folder = root / "arithmetic" / "gsm_symbolic"
    tree = ast.parse((folder / "gsm_symbolic.py").read_text())
    ok = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
              and any(getattr(t, "id", "") == "tasks_ok" for t in n.targets))
    utils = exec_source_file(root / "utils.py", "_mona_reasoning_gym_utils")
    gens: dict[int, Callable] = {}
    for file in sorted(folder.glob("generators_*.py")):
        module = exec_source_file(file, f"_mona_gsm_{file.stem}", provides={"reasoning_gym.utils": utils})
        names = [n for n in dir(module) if n.startswith("generate_")]
        gens.update({int(n[len("generate_") :]): getattr(module, n) for n in names})
    return {t: gens[t] for t in ok if t in gens}


def gsm_template_split() -> tuple[list[int], list[int]]:
    """(pool templates, target templates): a fixed half/half split of gsm_symbolic's working templates."""
    ids = sorted(gsm_generators())
    random.Random(GSM_SPLIT_SEED).shuffle(ids)
    half = len(ids) // 2
    return sorted(ids[:half]), sorted(ids[half:])


def _gsm_stream(template: int, gen: Callable, stream: str, seed: int) -> Iterator[tuple[str, dict]]:
    for i in range(MAX_PER_TEMPLATE):
        ex = gen(random.Random(stable_hash(stream, seed, template, i)), 1.0)
        key = f"{stream}-{seed}-{i}"
        yield key, record("gsm_symbolic", "math", f"template_{template}", key, ex["question"],
                          ex["metadata"]["answer_cot"])


def gsm_subsets(templates: list[int], stream: str, seed: int) -> dict[str, Iterator[tuple[str, dict]]]:
    """Subset name -> endless-ish ``(key, record)`` stream of one template; ``stream`` names a disjoint sequence."""
    gens = gsm_generators()
    return {f"template_{t}": _gsm_stream(t, gens[t], stream, seed) for t in templates}
