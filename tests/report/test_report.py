"""The HTML report: sections, escaping, options, settings rows; embedded images only; screenshot with Chromium."""

from __future__ import annotations

import re

import pytest

from mona.select import select


@pytest.fixture(scope="module")
def report(stores_on_disk, tiny, tmp_path_factory):
    from mona.labels import LabelConfig, compute_labels
    from mona.report import render_report
    from mona.testing import TINY_HOOK as HOOK
    from mona.testing import tiny_sae

    root, pool_samples = stores_on_disk
    out = tmp_path_factory.mktemp("report")
    sel = select(root / "pool", target=root / "target", n=6, pool_samples=pool_samples)
    sel.records[0] = {**sel.records[0], "instruction": "<script>alert('pick')</script> & solve"}
    sel.save(out / "sel")
    labels = compute_labels(pool_samples, model=tiny, sae=tiny_sae(), hook=HOOK, config=LabelConfig(top_k=3),
                            out_dir=out / "labels", progress=False)
    path = render_report(out / "sel", labels=labels, pool_samples=pool_samples)
    return path, path.read_text(encoding="utf-8")


def test_sections_and_content(report):
    path, html = report
    assert path.name == "report.html"
    for section in ("summary", "distributions", "mix", "features", "picks"):
        assert f'id="{section}"' in html
    for heading in ("Summary", "Selection config", "Embedding store", "Coverage", "Distributions", "Domain mix",
                    "Over-represented features", "Selected samples"):
        assert f">{heading}</h" in html
    assert "Target set 0:" in html and "Feature shares." in html
    assert "Relevance of every pool sample" in html and "Active features per sample" in html
    assert "No feature labels" not in html and 'class="ctx"' in html
    assert "<mark>" in html  # highlighted activating tokens
    assert html.count('class="card"') == 6
    assert "math" in html and "poetry" in html  # domain mix


def test_self_contained(report):
    _, html = report
    imgs = re.findall(r'<img[^>]+src="([^"]+)"', html)
    assert len(imgs) >= 4 and all(src.startswith("data:image/png;base64,") for src in imgs)
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', html)
    assert "<link" not in html and "@import" not in html and "<script" not in html
    assert "<style>" in html


def test_sample_text_is_escaped(report):
    _, html = report
    assert "&lt;script&gt;alert(&#39;pick&#39;)&lt;/script&gt; &amp; solve" in html
    assert "<script" not in html


def test_without_labels_and_options(stores_on_disk, tmp_path):
    from mona.explain import explain
    from mona.report import ReportConfig, render_report

    root, pool_samples = stores_on_disk
    select(root / "pool", target=root / "target", n=5, pool_samples=pool_samples).save(tmp_path / "s")
    path = render_report(tmp_path / "s", cards=2, features=3, pool_samples=pool_samples)  # explains on the fly
    html = path.read_text(encoding="utf-8")
    assert path == tmp_path / "s" / "report.html"
    assert html.count('class="card"') == 2 and "The first 2 of 5 picks" in html
    assert "No feature labels" in html and "<mark>" not in html
    assert len(re.findall(r"<tr><td class=\"num\">\d+</td>", html)) == 3  # feature rows

    ex = explain(tmp_path / "s", pool_samples=pool_samples)
    out = render_report(tmp_path / "s", explanation=ex, out=tmp_path / "r.html",
                        config=ReportConfig(title="<b>mine</b>", cards=1), features=1)
    html = out.read_text(encoding="utf-8")
    assert "<title>&lt;b&gt;mine&lt;/b&gt;</title>" in html and html.count('class="card"') == 1


def test_report_config_checks():
    from mona.errors import MonaError
    from mona.report import ReportConfig, render_report

    with pytest.raises(MonaError, match="cards"):
        ReportConfig(cards=-1)
    with pytest.raises(MonaError, match="unknown report option"):
        render_report("nowhere", colour="red")


def test_method_settings():
    from mona.report.page import _method_settings, _shows_relevance

    nested = {"method": "mmr", "n": 10, "ratio": None, "seed": 0, "targets": "merge", "quotas": None,
              "top_features": 8, "options": {"similarity": "cosine", "mmr_lambda": 0.7}}
    assert _method_settings(nested) == [("method", "mmr"), ("n", 10), ("seed", 0), ("similarity", "cosine"),
                                        ("mmr_lambda", 0.7)]  # the options in their own order
    several = {**nested, "targets": "quota", "quotas": [1.0, 2.0], "options": {}}
    assert _method_settings(several) == [("method", "mmr"), ("n", 10), ("seed", 0), ("targets", "quota"),
                                         ("quotas", [1.0, 2.0])]
    # mmr's score is the MMR objective, so its cards also show the relevance; mona's and dense's are the relevance
    assert _shows_relevance("mmr") and not _shows_relevance("mona") and not _shows_relevance("dense")


def test_score_by_rank_and_chat_cards():
    from types import SimpleNamespace

    from mona.report.page import _distribution_figures, _sample_text

    figs = _distribution_figures(SimpleNamespace(scores=[3.0, 2.0, 1.0]), SimpleNamespace(pool=None))
    assert figs["relevance"] is None and figs["rank"].startswith("data:image/png;base64,")
    chat = {"messages": [{"role": "user", "content": "<b>hi</b>"}, {"role": "assistant", "content": "x" * 30}]}
    turns = _sample_text(chat, limit=10)["turns"]
    assert turns == [{"role": "user", "content": "<b>hi</b>"}, {"role": "assistant", "content": "x" * 10 + " …"}]


def test_cli_report_and_screenshot(stores_on_disk, tmp_path):
    from mona.cli import main
    from mona.report import find_chromium

    root, pool_samples = stores_on_disk
    select(root / "pool", target=root / "target", n=4, pool_samples=pool_samples).save(tmp_path / "s")
    args = ["report", str(tmp_path / "s"), "--out", str(tmp_path / "r.html")]
    if find_chromium():
        args += ["--screenshot", str(tmp_path / "r.png")]
    assert main(args) == 0
    assert (tmp_path / "r.html").exists()
    if not find_chromium():
        pytest.skip("no Chromium on PATH: screenshot not checked")
    png = (tmp_path / "r.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
