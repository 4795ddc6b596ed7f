"""The transfer benchmark's data: each target's domain in the pool only in other sources and formats."""

from collections import Counter

import pytest

from mona.demo import load_jsonl, prompt_of
from mona.demo.transfer import TRANSFER_TARGETS, build_transfer_pool, build_transfer_targets
from mona.testing import norm


@pytest.fixture(scope="module")
def pool(home):
    return load_jsonl(build_transfer_pool(n=600, seed=0))


@pytest.fixture(scope="module")
def targets(home):
    return {k: load_jsonl(p) for k, p in build_transfer_targets(seed=0).items()}


def test_pool_parts_and_target_domains(pool):
    assert len(pool) == 600 and len({r["id"] for r in pool}) == 600
    parts = Counter(r["part"] for r in pool)
    assert {"in-domain", "distractor:choice", "distractor:cot", "distractor:completion", "filler"} == set(parts)
    domains = Counter(r["domain"] for r in pool if r["part"] == "in-domain")
    assert all(domains[t] == 60 for t in TRANSFER_TARGETS)  # 10% of the pool each
    # distractors and filler are never in a target's domain
    assert not {r["domain"] for r in pool if r["part"] != "in-domain"} & set(TRANSFER_TARGETS)


def test_in_domain_samples_come_from_other_sources_and_formats(pool, targets):
    sources = {k: {r["source"] for r in v} for k, v in targets.items()}
    assert sources == {"math": {"mmlu"}, "science": {"mmlu"}, "code": {"human_eval"}, "reasoning": {"bbh"}}
    for t in TRANSFER_TARGETS:
        in_domain = [r for r in pool if r["part"] == "in-domain" and r["domain"] == t]
        assert not {r["source"] for r in in_domain} & sources[t]
    # multiple-choice layout only among distractors; BBH's "Let's think step by step" only among CoT distractors
    choice = [r for r in pool if "multiple choice question about" in prompt_of(r)]
    assert choice and all(r["part"].startswith("distractor") for r in choice)
    cot = [r for r in pool if prompt_of(r).endswith("A: Let's think step by step.")]
    assert cot and all(r["part"] == "distractor:cot" for r in cot)
    fenced = [r for r in pool if prompt_of(r).startswith("Complete the following") and "```text" in prompt_of(r)]
    assert fenced and all(r["part"] == "distractor:completion" for r in fenced)
    target_prompts = {norm(prompt_of(r)) for v in targets.values() for r in v}
    assert not target_prompts & {norm(prompt_of(r)) for r in pool}


def test_halves_split_the_targets_and_builds_are_deterministic(home, pool, targets):
    tune, report = build_transfer_targets(split="tune"), build_transfer_targets(split="report")
    for k in TRANSFER_TARGETS:
        a, b = load_jsonl(tune[k]), load_jsonl(report[k])
        assert {r["id"] for r in a} | {r["id"] for r in b} == {r["id"] for r in targets[k]}
        assert not {r["id"] for r in a} & {r["id"] for r in b}
    again = load_jsonl(build_transfer_pool(n=600, seed=0, force=True))
    assert [r["id"] for r in again] == [r["id"] for r in pool]
