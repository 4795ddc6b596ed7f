"""The proxy fine-tune on a tiny random Llama: loss goes down, only response tokens carry loss, same seed gives
same losses, finished runs are not retrained, and bad input is a one-line error before any training."""

from __future__ import annotations

import json

import pytest
import torch

from mona.data import load_samples, render
from mona.errors import MonaError
from mona.io import atomic_write_lines
from mona.select import select
from mona.tune import TUNE_JSON, TUNE_PNG, TuneConfig, load_tune, tune
from mona.tune.batches import IGNORE, collate, encode, encode_all
from mona.tune.model import load_causal_lm, response_loss

TOPICS = ["add {a} and {b}", "the capital of country {a}", "write a poem about star {a}", "sort the list {a} {b}"]


def _records(n: int, prefix: str, respond: bool = True) -> list[dict]:
    out = []
    for i in range(n):
        prompt = TOPICS[i % len(TOPICS)].format(a=i, b=i + 3)
        msgs = [{"role": "user", "content": f"{prefix} {i}: {prompt}?"}]
        if respond:
            msgs.append({"role": "assistant", "content": f"The answer is {i + 3}. Solve for x: {i} + 5 = {i + 5}."})
        out.append({"id": f"{prefix}-{i}", "messages": msgs, "domain": "math" if i % 2 else "general"})
    return out


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and on a busy machine thread hand-offs cost more than the math."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A 2-layer, hidden-32 random Llama with the project's tiny BPE tokenizer, saved as an HF folder."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from mona.testing import tiny_tokenizer

    tok = tiny_tokenizer()
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      initializer_range=0.1)  # HF's 0.02 leaves the frozen head too weak for LoRA to move the loss
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tune-data")
    files = {name: root / f"{name}.jsonl" for name in ("pool", "eval", "cross", "split", "noresp")}
    for name, recs in (("pool", _records(40, "pool")), ("eval", _records(6, "eval")), ("cross", _records(5, "x")),
                       ("split", _records(10, "split")), ("noresp", _records(4, "q", respond=False))):
        atomic_write_lines(files[name], recs)
    pool = load_samples(files["pool"])
    for method in ("longest", "random"):
        sel = select(None, method=method, n=8, pool_samples=pool)
        sel.info["pool_samples"] = str(files["pool"])
        sel.save(root / f"sel-{method}")
    return root, files


def _config(model_dir, **kw) -> TuneConfig:
    base = dict(model=str(model_dir), max_samples=8, batch_size=4, random_seeds=2, max_tokens=64, learning_rate=2e-2,
                lora_r=4, lora_alpha=8, lora_dropout=0.0, device="cpu", threads=1)
    return TuneConfig(**{**base, **kw})


def test_labels_are_the_response_tokens_only(model_dir):
    from mona.data import to_sample

    lm = load_causal_lm(_config(model_dir))
    sample = to_sample({"messages": [{"role": "system", "content": "Be brief."},
                                     {"role": "user", "content": "What is the capital of France?"},
                                     {"role": "assistant", "content": "Paris is the capital of France."}]})
    e = encode(sample, lm.tokenizer, 64)
    kept = [t for t, label in zip(e.ids, e.labels) if label != IGNORE]
    assert [label for label in e.labels if label != IGNORE] == kept
    assert lm.tokenizer.decode(kept).strip() == "Paris is the capital of France."
    rendered = render(sample, lm.tokenizer)
    prompt_tokens = len(lm.tokenizer(rendered.text[: rendered.response_char_start])["input_ids"])
    assert all(label == IGNORE for label in e.labels[:prompt_tokens])  # BOS, turn markers, system and user text
    assert e.labels[-1] == IGNORE and e.labels[-2] == IGNORE  # <end_of_turn> and the newline after it
    # logits only at the response positions give exactly the HF model's own masked loss
    ids, mask, labels = collate(encode_all([sample, sample], lm.tokenizer, 64, "t"), lm.tokenizer.pad_token_id)
    loss_sum, count = response_loss(lm.model, ids, mask, labels)
    assert count == 2 * len(kept)
    hf = lm.model(input_ids=ids, attention_mask=mask, labels=labels).loss
    assert torch.allclose(loss_sum / count, hf, atol=1e-5)


def test_training_lowers_the_loss_on_the_training_data(model_dir, data):
    from mona.tune.train import evaluate, train_lora

    config = _config(model_dir, epochs=2, batch_size=2, lora_r=8, lora_alpha=16)
    lm = load_causal_lm(config)
    items = encode_all(load_samples(data[1]["pool"])[:16], lm.tokenizer, 64, "train")
    before = evaluate(lm.model, lm, items, config, progress=False)["loss"]
    model, stats = train_lora(lm, items, config, seed=0, progress=False)
    after = evaluate(model, lm, items, config, progress=False)["loss"]
    assert stats["steps"] == 16 and stats["tokens"] > 0
    assert after < before - 0.5, (before, after)
    assert evaluate(lm.model, lm, items, config, progress=False)["loss"] == pytest.approx(before)  # base untouched


def test_same_seed_same_losses_and_the_summary(model_dir, data, tmp_path):
    root, files = data
    kwargs = dict(eval_cross=files["cross"], tune_split=files["split"], config=_config(model_dir), progress=False)
    a = tune([root / "sel-longest"], files["eval"], out_dir=tmp_path / "a", **kwargs)
    b = tune([root / "sel-longest"], files["eval"], out_dir=tmp_path / "b", **kwargs)
    assert [r["eval"] for r in a.runs] == [r["eval"] for r in b.runs]
    assert [r["train"]["step_losses"] for r in a.runs[1:]] == [r["train"]["step_losses"] for r in b.runs[1:]]
    assert [r["key"] for r in a.runs] == ["base", "selection-sel-longest", "random-n8-seed0", "random-n8-seed1",
                                          "reference"]
    rows = {r["group"]: r for r in a.rows}
    assert set(rows) == {"base", "sel-longest", "random", "reference"} and rows["random"]["runs"] == 2
    base, ref = rows["base"]["eval"]["eval"]["loss"], rows["reference"]["eval"]["eval"]["loss"]
    sel = rows["sel-longest"]["eval"]["eval"]
    assert sel["gain"] == pytest.approx(base - sel["loss"])
    assert sel["share"] == pytest.approx(sel["gain"] / (base - ref)) if base > ref else sel["share"] is None
    assert rows["random"]["eval"]["cross"]["std"] is not None
    saved = load_tune(tmp_path / "a")
    assert saved.rows == json.loads(json.dumps(a.rows)) and (tmp_path / "a" / TUNE_PNG).stat().st_size > 1000
    assert "held-out loss" in a.table() and "sel-longest" in a.table()


def test_a_rerun_trains_only_what_is_missing(model_dir, data, tmp_path, monkeypatch):
    import mona.tune.train as train_module

    root, files = data
    config = _config(model_dir, random_seeds=1)
    first = tune([root / "sel-longest"], files["eval"], config=config, out_dir=tmp_path, progress=False)
    calls: list[int] = []
    real = train_module.train_lora

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_lora", counting)
    mtimes = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "tune_runs").iterdir()}
    again = tune([root / "sel-longest"], files["eval"], config=config, out_dir=tmp_path, progress=False)
    assert calls == [] and again.runs == first.runs
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "tune_runs").iterdir()} == mtimes
    tune([root / "sel-longest", root / "sel-random"], files["eval"], config=config, out_dir=tmp_path, progress=False)
    assert calls == [1]  # only the new selection (same size, so the random subset is reused)
    changed = _config(model_dir, random_seeds=1, learning_rate=1e-2)
    tune([root / "sel-longest"], files["eval"], config=changed, out_dir=tmp_path, progress=False)
    assert len(calls) == 3  # other settings: the selection and the random subset run again
    assert json.loads((tmp_path / TUNE_JSON).read_text())["config"]["learning_rate"] == 1e-2


def _no_head(model_dir, tmp_path):
    from transformers import LlamaModel

    LlamaModel.from_pretrained(model_dir).save_pretrained(tmp_path / "headless")
    return {"model": str(tmp_path / "headless")}


@pytest.mark.parametrize("case", ["selection without responses", "eval without responses", "no causal-LM head",
                                  "too little memory", "pool missing", "bad setting"])
def test_bad_input_is_one_line_before_training(case, model_dir, data, tmp_path, monkeypatch):
    import mona.tune.model as model_module
    import mona.tune.train as train_module

    root, files = data
    sels, evals, extra = [root / "sel-longest"], files["eval"], {}
    if case == "selection without responses":
        bad = select(None, method="random", n=2, pool_samples=load_samples(files["noresp"]))
        sels = [bad.save(tmp_path / "sel-noresp")]
        match = "no response"
    elif case == "eval without responses":
        evals, match = files["noresp"], "no response"
    elif case == "no causal-LM head":
        extra, match = _no_head(model_dir, tmp_path), "no causal-LM head"
    elif case == "too little memory":
        monkeypatch.setattr(model_module, "available_memory", lambda: 1_000_000)
        match = "lower --batch-size"
    elif case == "pool missing":
        bad = select(None, method="random", n=4, pool_samples=load_samples(files["pool"]))
        sels, match = [bad.save(tmp_path / "sel-nopool")], "need the pool"
    else:
        extra, match = {"epochs": 5}, "epochs must be 1 or 2"
    monkeypatch.setattr(train_module, "train_lora", lambda *a, **k: pytest.fail("trained before the error"))
    with pytest.raises(MonaError, match=match) as err:
        tune(sels, evals, out_dir=tmp_path / "out", config=_config(model_dir), progress=False, **extra)
    assert "\n" not in str(err.value)


def test_cli_runs_and_prints_the_table(model_dir, data, tmp_path, capsys):
    from mona.cli import main

    root, files = data
    argv = ["tune", str(root / "sel-longest"), "--eval", str(files["eval"]), "--tune-split", str(files["split"]),
            "--out", str(tmp_path), "--model", str(model_dir), "--max-samples", "8", "--random-seeds", "1",
            "--max-tokens", "64", "--lora-r", "4", "--batch-size", "4", "--threads", "1", "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "reference" in out and "share of ref." in out and str(tmp_path / TUNE_JSON) in out
    assert main([*argv, "--epochs", "3"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_the_report_shows_the_tune_section(model_dir, data, tmp_path):
    import shutil

    from mona.report import render_report

    root, files = data
    sel = tmp_path / "sel"
    shutil.copytree(root / "sel-longest", sel)
    html = (render_report(sel, out=tmp_path / "before.html", pool_samples=files["pool"])).read_text()
    assert 'id="tune"' not in html  # optional: no tune.json, no section
    tune([sel], files["eval"], tune_split=files["split"], config=_config(model_dir, random_seeds=1), progress=False)
    html = render_report(sel, out=tmp_path / "after.html").read_text()
    assert 'id="tune"' in html and "Does the subset help?" in html and "share of ref." in html
    assert html.count("data:image/png;base64,") >= 1 and "<td>reference</td>" in html


def test_every_tune_setting_is_a_flag(capsys):
    import dataclasses

    from mona.cli import main

    assert main(["tune", "--help"]) == 0
    shown = capsys.readouterr().out
    for f in dataclasses.fields(TuneConfig):
        assert "--" + f.name.replace("_", "-") in shown, f.name
    for flag in ("--eval", "--eval-cross", "--tune-split", "--pool-samples", "--out"):
        assert flag in shown
