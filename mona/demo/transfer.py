"""The transfer benchmark's data: targets from one source, in-domain pool samples from other sources in other
formats, and distractors that share each target's format.

The demo pool (:mod:`mona.demo.pool`) holds target-domain samples in the targets' own sources and formats. Here
every target's domain is present in the pool only in *other* formats, while off-domain samples wear the target's
format, so a method that matches the layout instead of the topic picks the distractors:

- **math**: target = MMLU math subjects (multiple choice); in-domain pool = gsm_symbolic word problems and evals
  math datasets (chat); distractors = MMLU questions of off-domain subjects (multiple choice).
- **science**: target = MMLU science subjects (multiple choice); in-domain pool = evals science datasets (chat);
  distractors = the same off-domain MMLU questions.
- **code**: target = HumanEval (complete a fenced Python function); in-domain pool = codeio tasks and evals code
  datasets (chat); distractors = prose passages and off-domain quizzes laid out as fenced completions.
- **reasoning**: target = BBH chain-of-thought exemplars (``Q: ... A: Let's think step by step.``); in-domain
  pool = evals reasoning datasets (chat); distractors = lm-eval's MMLU chain-of-thought exemplars of off-domain
  subjects, in the same ``Q:``/``A:`` layout.

One pool serves all four targets (each target's in-domain share is about 10%); the rest is off-domain chat from
evals (language, general, social, humanities, health, computing). Pool items come from the pool side of the
SAE-corpus partition (:func:`~mona.demo.records.is_sae_partition`); gsm_symbolic problems from the pool's
templates, on their own random stream. Targets are cut into ``tune`` and ``report`` halves like the demo
targets. Cached as jsonl under ``mona_home()/data`` (:mod:`mona.demo.cache`).
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Iterator
from pathlib import Path

from mona.demo.cache import DATA_VERSION, cached, data_dir, write
from mona.demo.codeio import codeio_candidates
from mona.demo.domains import EVALS_DOMAINS, MMLU_DOMAINS
from mona.demo.evals import evals_candidates
from mona.demo.gsm_symbolic import gsm_subsets, gsm_template_split
from mona.demo.mmlu import mmlu_candidates
from mona.demo.packages import package_file
from mona.demo.prose import prose_texts
from mona.demo.records import is_sae_partition, norm, prompt_of, record, round_robin, stable_hash
from mona.demo.targets import Split, code_target, reasoning_target
from mona.errors import DataError

log = logging.getLogger(__name__)

TRANSFER_TARGETS = ("math", "science", "code", "reasoning")
"""The transfer targets; a pool sample is a hit for a target when its ``domain`` equals the target's name."""

MATH_SUBJECTS = tuple(s for s, d in MMLU_DOMAINS.items() if d == "math")
SCIENCE_SUBJECTS = tuple(s for s, d in MMLU_DOMAINS.items() if d == "science")
DISTRACTOR_DOMAINS = ("humanities", "social", "health", "general")
"""MMLU domains used as multiple-choice distractors (never math, science, computing or reasoning-like subjects)."""
NOT_DISTRACTORS = ("formal logic", "logical fallacies")
"""MMLU subjects of a distractor domain left out: they are reasoning exercises in all but name."""
FILLER_DOMAINS = ("language", "general", "social", "humanities", "health", "computing")

TRANSFER_SHARES: dict[str, float] = {
    "math": 0.10, "science": 0.10, "code": 0.10, "reasoning": 0.10,
    "distractor:choice": 0.17, "distractor:cot": 0.07, "distractor:completion": 0.10, "filler": 0.26,
}
"""Share of each part of the transfer pool: the in-domain samples of each target, the distractors in each target
format (multiple choice for math and science, Q:/A: chain of thought for reasoning, fenced completions for code)
and off-domain chat."""

TARGET_SIZE = 160


# --------------------------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------------------------


def mmlu_target(subjects: tuple[str, ...], seed: int, size: int = TARGET_SIZE) -> list[dict]:
    """``size`` MMLU questions of ``subjects``, the subjects taking turns (multiple-choice format); none from the
    SAE corpus's partition."""
    rng = random.Random(seed)
    by_subject: dict[str, Iterator] = {}
    seen: set[str] = set()
    for subject in subjects:
        items = [(q, rec) for _, q, rec in mmlu_candidates([subject])
                 if not is_sae_partition("mmlu", q) and not (q in seen or seen.add(q))]
        rng.shuffle(items)
        by_subject[subject] = iter(items)
    return [rec for rec, _ in zip(round_robin(by_subject, rng), range(size), strict=False)]


def transfer_target_records(name: str, seed: int = 0) -> list[dict]:
    """All samples of one transfer target, before the tune/report cut."""
    builders = {"math": lambda: mmlu_target(MATH_SUBJECTS, seed), "code": code_target,
                "science": lambda: mmlu_target(SCIENCE_SUBJECTS, seed), "reasoning": reasoning_target}
    if name not in builders:
        raise DataError(f"unknown transfer target {name!r}; valid: {', '.join(TRANSFER_TARGETS)}")
    return builders[name]()


# --------------------------------------------------------------------------------------------------------
# Pool parts
# --------------------------------------------------------------------------------------------------------


def _evals_by_domain(domains: tuple[str, ...]) -> dict[str, dict[str, list]]:
    """domain -> evals dataset -> ``(key, record)`` items on the pool side of the partition."""
    out: dict[str, dict[str, list]] = {}
    for name, key, rec in evals_candidates():
        if rec["domain"] in domains and not is_sae_partition("evals", norm(prompt_of(rec))):
            out.setdefault(rec["domain"], {}).setdefault(name, []).append((key, rec))
    return out


def _shuffled(subsets: dict[str, list], rng: random.Random) -> dict[str, Iterator]:
    out = {}
    for name in sorted(subsets):
        items = list(subsets[name])
        rng.shuffle(items)
        out[name] = iter(items)
    return out


def _take(streams: list[Iterator], n: int, seen: set[str]) -> list[dict]:
    """``n`` records with prompts not yet ``seen``, the streams taking turns."""
    out: list[dict] = []
    live = list(streams)
    while len(out) < n and live:
        for it in list(live):
            rec = next(it, None)
            if rec is None:
                live.remove(it)
                continue
            key = norm(prompt_of(rec))
            if key in seen or len(out) >= n:
                continue
            seen.add(key)
            out.append(rec)
    return out


def _in_domain(domain: str, evals: dict, rng: random.Random, seed: int) -> list[Iterator]:
    """Streams of in-domain chat records for one target domain: evals datasets, plus gsm_symbolic (math) and
    codeio (code) as extra sources taking as many turns as evals."""
    streams = [round_robin(_shuffled(evals.get(domain, {}), rng), rng)]
    if domain == "math":
        pool_templates, _ = gsm_template_split()
        streams.append(round_robin(gsm_subsets(pool_templates, "transfer", seed), rng))
    if domain == "code":
        subsets: dict[str, list] = {}
        for subset, key, rec in codeio_candidates():
            if not is_sae_partition("codeio", norm(prompt_of(rec))):
                subsets.setdefault(subset, []).append((key, rec))
        streams.append(round_robin(_shuffled(subsets, rng), rng))
    return streams


def choice_distractors(rng: random.Random) -> Iterator[dict]:
    """Off-domain MMLU questions in the multiple-choice format of the math and science targets."""
    subsets: dict[str, list] = {}
    for subject, key, rec in mmlu_candidates():
        if MMLU_DOMAINS[subject] in DISTRACTOR_DOMAINS and subject not in NOT_DISTRACTORS \
                and not is_sae_partition("mmlu", key):
            subsets.setdefault(subject, []).append((key, rec))
    return round_robin(_shuffled(subsets, rng), rng)


def cot_distractors(rng: random.Random) -> Iterator[dict]:
    """lm-eval's MMLU chain-of-thought exemplars of off-domain subjects, laid out like the BBH target
    (``description``, ``Q: ...``, ``A: Let's think step by step.``; the response is the reasoning)."""
    import yaml

    subsets: dict[str, list] = {}
    for file in sorted(package_file("lm_eval", "tasks/mmlu/flan_cot_fewshot").glob("mmlu_*.yaml")):
        cfg = yaml.safe_load(file.read_text(encoding="utf-8"))
        subject = str(cfg.get("dataset_name", file.stem[5:])).replace("_", " ")
        if MMLU_DOMAINS.get(subject) not in DISTRACTOR_DOMAINS or subject in NOT_DISTRACTORS:
            continue
        description = str(cfg.get("description", "")).strip()
        for i, ex in enumerate(cfg.get("fewshot_config", {}).get("samples", [])):
            prompt = f"{description}\n\nQ: {ex['question'].strip()}\nA: Let's think step by step."
            response = re.sub(r"^Let's think step by step\.\s*", "", str(ex["target"]).strip())
            rec = record("mmlu_cot", MMLU_DOMAINS[subject], subject, str(i), prompt, response)
            subsets.setdefault(subject, []).append((str(i), rec))
    return round_robin(_shuffled(subsets, rng), rng)


def _split_text(text: str) -> tuple[str, str]:
    """``text`` cut at the sentence end nearest its middle: (beginning, rest)."""
    ends = [m.end() for m in re.finditer(r"[.!?](\s+)", text)]
    if not ends:
        half = len(text) // 2
        return text[:half].rstrip(), text[half:].lstrip()
    cut = min(ends, key=lambda e: abs(e - len(text) / 2))
    return text[:cut].rstrip(), text[cut:].strip()


def completion_record(source: str, domain: str, subset: str, key: str, kind: str, text: str) -> dict:
    """Off-domain text laid out like the HumanEval target: "Complete the following ..." and a fenced block whose
    beginning (a triple-quoted docstring-like passage) the response repeats and continues."""
    head, rest = _split_text(text)
    block = f'"""\n{head}\n"""'
    prompt = f"Complete the following {kind}.\n\n```text\n{block}\n```"
    response = f"```text\n{block}\n{rest}\n```"
    return record(source, domain, subset, key, prompt, response)


def completion_distractors(rng: random.Random) -> list[Iterator[dict]]:
    """Prose passages (a public-domain novella, fables) and off-domain MMLU questions with their answers, in the
    code target's completion layout: two streams (prose, quizzes) that take turns."""
    prose = prose_texts()
    passages: dict[str, list] = {}
    for source in ("verne", "fables"):
        for i, text in enumerate(prose[source]):
            passages.setdefault(source, []).append(
                (str(i), completion_record(f"prose_{source}", "prose", source, str(i), "passage", text[:1100])))
    quizzes: dict[str, list] = {}
    for subject, key, rec in mmlu_candidates():
        if MMLU_DOMAINS[subject] in DISTRACTOR_DOMAINS and subject not in NOT_DISTRACTORS \
                and not is_sae_partition("mmlu", key) and stable_hash("completion", key) % 4 == 0:
            text = f"{prompt_of(rec)}\n{rec['messages'][-1]['content']}"
            quizzes.setdefault(subject, []).append(
                (key, completion_record("mmlu_completion", MMLU_DOMAINS[subject], subject, key, "quiz", text)))
    return [round_robin(_shuffled(passages, rng), rng), round_robin(_shuffled(quizzes, rng), rng)]


def build_transfer_pool(n: int = 2000, seed: int = 0, *, force: bool = False) -> Path:
    """Build (or reuse) the transfer pool (see the module docstring); returns its jsonl path.

    Every record has ``domain`` (what precision counts) and ``part``: ``in-domain``, ``distractor:<format>`` or
    ``filler``."""
    if n < 100:
        raise DataError(f"transfer pool size must be at least 100, got {n}")
    params = {"kind": "transfer_pool", "n": n, "seed": seed, "version": DATA_VERSION, "shares": TRANSFER_SHARES}
    path = data_dir() / f"transfer_pool-n{n}-seed{seed}-v{DATA_VERSION}.jsonl"
    if not force and cached(path, params):
        return path
    log.info("building transfer pool (n=%d, seed=%d)", n, seed)
    rng = random.Random(stable_hash("transfer", seed))
    evals = _evals_by_domain(tuple(EVALS_DOMAINS.values()))
    quotas = {k: round(n * s) for k, s in TRANSFER_SHARES.items()}
    quotas["filler"] += n - sum(quotas.values())
    parts: dict[str, list[Iterator]] = {d: _in_domain(d, evals, rng, seed) for d in TRANSFER_TARGETS}
    parts["distractor:choice"] = [choice_distractors(rng)]
    parts["distractor:cot"] = [cot_distractors(rng)]
    parts["distractor:completion"] = completion_distractors(rng)
    parts["filler"] = [round_robin(_shuffled(evals.get(d, {}), rng), rng) for d in FILLER_DOMAINS]
    seen: set[str] = set()
    records = []
    for part, streams in parts.items():
        got = _take(streams, quotas[part], seen)
        if len(got) < quotas[part]:  # the CoT exemplars are few; chat filler makes up the count
            log.info("%s: %d of %d available", part, len(got), quotas[part])
            quotas["filler"] += quotas[part] - len(got)
        label = "in-domain" if part in TRANSFER_TARGETS else part
        records += [{**rec, "part": label} for rec in got]
    random.Random(seed + 1).shuffle(records)
    write(path, records, params)
    return path


def build_transfer_targets(seed: int = 0, split: Split = "all", *, force: bool = False) -> dict[str, Path]:
    """Build (or reuse) the transfer targets ``math``, ``science``, ``code``, ``reasoning``, each shuffled and cut
    into a ``tune`` and a ``report`` half like :func:`mona.demo.build_demo_targets`. Returns name -> jsonl path."""
    if split not in ("tune", "report", "all"):
        raise DataError(f"split must be 'tune', 'report' or 'all', got {split!r}")
    folder = data_dir() / "targets"
    paths = {k: folder / f"transfer-{k}-seed{seed}-{split}-v{DATA_VERSION}.jsonl" for k in TRANSFER_TARGETS}
    params = {k: {"kind": "transfer_target", "target": k, "seed": seed, "split": split, "version": DATA_VERSION}
              for k in TRANSFER_TARGETS}
    if not force and all(cached(paths[k], params[k]) for k in paths):
        return paths
    for name in TRANSFER_TARGETS:
        records = transfer_target_records(name, seed)
        random.Random(stable_hash("transfer-split", name, seed)).shuffle(records)
        half = (len(records) + 1) // 2
        write(paths[name], {"tune": records[:half], "report": records[half:], "all": records}[split], params[name])
    return paths
