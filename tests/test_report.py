"""The HTML report: expected sections, embedded images, no external resources; screenshot when Chromium exists."""

from __future__ import annotations

import re

import pytest
from test_explain import stores_on_disk  # noqa: F401  (fixture)

from mona.select import select


@pytest.fixture(scope="module")
def report(stores_on_disk, tiny, tmp_path_factory):  # noqa: F811
    from test_explain import HOOK, tiny_sae

    from mona.labels import LabelConfig, compute_labels
    from mona.report import render_report

    root, pool_samples = stores_on_disk
    out = tmp_path_factory.mktemp("report")
    sel = select(root / "pool", target=root / "target", n=6, pool_samples=pool_samples)
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
    assert "Over-represented features" in html and "Selected samples" in html
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


def test_cli_report_and_screenshot(stores_on_disk, tmp_path):  # noqa: F811
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
