"""One self-contained HTML report of a selection: summary, distributions, domain mix, features, picks.

The page has no external resources: the CSS (``mona/assets/report/report.css``) is inlined and every plot is a
matplotlib PNG embedded as base64, so the file can be mailed, archived or opened offline. It reads the
selection folder and its explanation (running :func:`mona.explain.explain` first when there is none) and,
optionally, feature labels (:mod:`mona.labels`) for the feature names and example contexts.
"""

from __future__ import annotations

import base64
import html
import io
import logging
from pathlib import Path
from typing import Any

import numpy as np

from mona.errors import MonaError

log = logging.getLogger(__name__)

CSS = Path(__file__).parent / "assets" / "report" / "report.css"
REPORT_HTML = "report.html"
POOL_COLOR, SEL_COLOR = "#8aa1c1", "#d9480f"


def render_report(
    selection: str | Path,
    *,
    explanation: Any = None,
    labels: Any = None,
    pool_samples: Any = None,
    out: str | Path | None = None,
    cards: int = 24,
    features: int = 20,
    examples: int = 3,
    title: str | None = None,
) -> Path:
    """Write the HTML report of the selection folder ``selection``; returns its path.

    Args:
        explanation: an :class:`~mona.explain.Explanation` or its folder; default: the one in the selection
            folder, computed (and saved there) if missing.
        labels: :class:`~mona.labels.FeatureLabels` or a label folder (feature names and example contexts).
        pool_samples: the pool's samples (file or list), for the domain/source mix when explaining here.
        out: the HTML file to write (default ``<selection>/report.html``).
        cards: how many picks get a card; features: how many enriched features are listed; examples: contexts
            shown per feature.
    """
    from mona.explain import EXPLAIN_JSON, Explanation, explain, load_explanation
    from mona.select import load_selection

    sel_dir = Path(selection)
    sel = load_selection(sel_dir)
    if isinstance(explanation, Explanation):
        ex = explanation
    elif explanation is not None:
        ex = load_explanation(explanation)
    elif (sel_dir / EXPLAIN_JSON).exists():
        ex = load_explanation(sel_dir)
    else:
        ex = explain(sel_dir, pool_samples=pool_samples, labels=labels)
    if labels is None and ex.summary.get("labels") and Path(ex.summary["labels"]).exists():
        labels = ex.summary["labels"]
    if labels is not None and not hasattr(labels, "examples"):
        from mona.labels import load_labels

        labels = load_labels(labels)
    page = _Page(sel, ex, labels, title or f"mona selection report — {sel_dir.name}")
    body = "\n".join([
        page.header(),
        page.summary(),
        page.distributions(),
        page.mix(),
        page.features(features, examples),
        page.cards(cards),
    ])
    doc = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{_e(page.title)}</title>"
        f"<style>\n{CSS.read_text(encoding='utf-8')}</style></head>\n<body><main>\n{body}\n</main></body></html>\n"
    )
    path = Path(out) if out is not None else sel_dir / REPORT_HTML
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(doc, encoding="utf-8")
    tmp.replace(path)
    log.info("wrote the report to %s (%.0f kB)", path, path.stat().st_size / 1024)
    return path


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _fmt(x: Any, digits: int = 3) -> str:
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    if isinstance(x, (float, np.floating)):
        x = float(x)
        if x != x:
            return "—"
        if x != 0 and (abs(x) < 10 ** -digits or abs(x) >= 1e5):
            return f"{x:.2e}"
        return f"{x:.{digits}f}".rstrip("0").rstrip(".") if abs(x) < 1000 else f"{x:,.0f}"
    if x is None:
        return "—"
    return str(x)


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(src: str, caption: str) -> str:
    return f'<figure><img alt="{_e(caption)}" src="{src}"><figcaption>{_e(caption)}</figcaption></figure>'


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.spines.top": False, "axes.spines.right": False})
    return plt


def _hist(pool: np.ndarray | None, selected: np.ndarray, xlabel: str, title: str) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.6, 3.0))
    data = np.concatenate([selected, pool]) if pool is not None else selected
    lo, hi = float(np.min(data)), float(np.max(data))
    bins = np.linspace(lo, hi if hi > lo else lo + 1, 31)
    if pool is not None:
        ax.hist(pool, bins=bins, color=POOL_COLOR, alpha=0.75, density=True, label=f"pool (n={len(pool):,})")
    ax.hist(selected, bins=bins, color=SEL_COLOR, alpha=0.6, density=True, label=f"selected (n={len(selected):,})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.set_title(title, fontsize=10.5)
    ax.legend(frameon=False, fontsize=9)
    return _png(fig)


class _Page:
    def __init__(self, sel: Any, ex: Any, labels: Any, title: str) -> None:
        self.sel, self.ex, self.labels, self.title = sel, ex, labels, title
        self.s = ex.summary

    def name(self, f: int) -> str:
        label = self.labels.label(f) if self.labels is not None and f < self.labels.n_features else ""
        return f"#{f}" + (f" {label}" if label else "")

    # ---------------------------------------------------------------- header and summary
    def header(self) -> str:
        counts = self.s.get("counts", {})
        links = [("summary", "Summary"), ("distributions", "Distributions"), ("mix", "Domain mix"),
                 ("features", "Features"), ("picks", "Selected samples")]
        nav = " ".join(f'<a href="#{a}">{t}</a>' for a, t in links)
        return (
            f"<header><h1>{_e(self.title)}</h1>"
            f'<p class="lead">Method <b>{_e(self.sel.method)}</b>: {_fmt(counts.get("selected"))} samples selected '
            f"from a pool of {_fmt(counts.get('pool'))}.</p><nav>{nav}</nav></header>"
        )

    def summary(self) -> str:
        s, cov = self.s, self.s.get("coverage") or {}
        stats = [
            ("selected", _fmt(s["counts"].get("selected"))),
            ("pool", _fmt(s["counts"].get("pool"))),
            ("mean score", _fmt((s["scores"].get("selected") or {}).get("mean"))),
        ]
        if cov:
            stats += [
                ("features covered", f"{_fmt(cov['selected_features'])} / {_fmt(cov['pool_features'])}"),
                ("random subset covers", _fmt(cov["random_expected_features"], 1)),
                ("over-represented (q<α)", _fmt(s.get("significant_features"))),
            ]
        grid = "".join(f'<div class="stat"><div class="v">{v}</div><div class="k">{_e(k)}</div></div>'
                       for k, v in stats)
        rows = "".join(f"<tr><td>{_e(k)}</td><td><code>{_e(_fmt(v))}</code></td></tr>"
                       for k, v in _config_rows(self.s.get("select_config") or {}))
        rows += "<tr><td colspan='2' class='muted'>other settings at their defaults</td></tr>"
        pool = (self.s.get("stores") or {}).get("features") or (self.s.get("stores") or {}).get("pool") or {}
        store_rows = "".join(f"<tr><td>{_e(k)}</td><td><code>{_e(_fmt(pool.get(k)))}</code></td></tr>"
                             for k in ("path", "model", "sae", "hook", "mode", "pooling", "span") if pool.get(k))
        sem = self.s.get("feature_semantics")
        parts = [f'<section id="summary"><h2>Summary</h2><div class="grid">{grid}</div>']
        if sem:
            parts.append(f'<p class="note"><b>Feature shares.</b> {_e(sem)}</p>')
        parts.append('<div class="plots"><div><h3>Selection config</h3>'
                     f'<table class="kv">{rows}</table></div><div><h3>Embedding store</h3>'
                     f'<table class="kv">{store_rows or "<tr><td>—</td><td>no store</td></tr>"}</table>')
        if cov:
            cov_rows = "".join(f"<tr><td>{_e(k.replace('_', ' '))}</td><td class='num'>{_fmt(v)}</td></tr>"
                               for k, v in cov.items())
            parts.append(f"<h3>Coverage</h3><table class='kv'>{cov_rows}</table>")
        for t in self.s.get("target_coverage") or []:
            parts.append(
                f"<p class='muted'>Target set {t['target']}: {_fmt(t['target_features'])} active features, "
                f"{_fmt(t['covered_by_selection'])} covered by the selection, {_fmt(t['covered_by_pool'])} by the "
                "pool.</p>"
            )
        parts.append("</div></div></section>")
        return "".join(parts)

    # ---------------------------------------------------------------- distributions
    def distributions(self) -> str:
        figs = []
        pool = self.ex.pool
        scores = np.asarray(self.sel.scores, dtype=np.float64)
        rel = pool["relevance"].astype(np.float64) if pool is not None and "relevance" in pool else None
        if rel is not None and np.isfinite(rel).any():
            sel_mask = pool["selected"].astype(bool)
            figs.append(_figure(
                _hist(rel[np.isfinite(rel)], rel[sel_mask & np.isfinite(rel)], "relevance to the target",
                      "Score: selected vs pool"),
                "Relevance of every pool sample to the target, recomputed from the stores; the selected samples "
                "are the top of this distribution (for mona, relevance = score).",
            ))
        else:
            plt = _plt()
            fig, ax = plt.subplots(figsize=(5.6, 3.0))
            ax.plot(np.arange(len(scores)), scores, color=SEL_COLOR, lw=1.6)
            ax.set_xlabel("rank")
            ax.set_ylabel("score")
            ax.set_title("Score by rank (pool scores are not defined for this method)", fontsize=10.5)
            figs.append(_figure(_png(fig), "Score of each pick in pick order."))
        if pool is not None:
            sel_mask = pool["selected"].astype(bool)
            for key, xlabel, cap in (
                ("n_active", "active SAE features per sample", "Active features per sample: a strong length "
                 "correlate, so a selection far to the right mostly picks long samples."),
                ("length", "tokens pooled per sample", "Sample length (valid tokens pooled) in the pool and the "
                 "selection."),
            ):
                if key in pool:
                    v = pool[key].astype(np.float64)
                    figs.append(_figure(_hist(v, v[sel_mask], xlabel, f"{xlabel}: selected vs pool"), cap))
        return f'<section id="distributions"><h2>Distributions</h2><div class="plots">{"".join(figs)}</div></section>'

    # ---------------------------------------------------------------- domain mix
    def mix(self) -> str:
        mix = self.s.get("mix") or {}
        if not mix:
            return ('<section id="mix"><h2>Domain mix</h2><p class="muted">The samples carry no '
                    "<code>domain</code>/<code>source</code> field.</p></section>")
        parts = ['<section id="mix"><h2>Domain mix</h2><div class="plots">']
        for key, m in mix.items():
            sel_c, pool_c = m.get("selected") or {}, m.get("pool") or {}
            names = sorted(set(sel_c) | set(pool_c), key=lambda k: (-(pool_c.get(k, 0)), -sel_c.get(k, 0), k))[:20]
            n_sel, n_pool = max(sum(sel_c.values()), 1), max(sum(pool_c.values()), 1)
            ps = np.array([pool_c.get(k, 0) / n_pool for k in names])
            ss = np.array([sel_c.get(k, 0) / n_sel for k in names])
            plt = _plt()
            fig, ax = plt.subplots(figsize=(5.6, 0.32 * len(names) + 1.0))
            y = np.arange(len(names))
            if pool_c:
                ax.barh(y - 0.2, ps, height=0.4, color=POOL_COLOR, label="pool")
            ax.barh(y + 0.2 if pool_c else y, ss, height=0.4, color=SEL_COLOR, label="selected")
            ax.set_yticks(y, [n[:28] for n in names])
            ax.invert_yaxis()
            ax.set_xlabel("share of samples")
            ax.set_title(f"{key}: selection vs pool", fontsize=10.5)
            ax.legend(frameon=False, fontsize=9)
            rows = "".join(
                f"<tr><td>{_e(k)}</td><td class='num'>{_fmt(pool_c.get(k, 0)) if pool_c else '—'}</td>"
                f"<td class='num'>{_fmt(p * 100, 1) + '%' if pool_c else '—'}</td>"
                f"<td class='num'>{_fmt(sel_c.get(k, 0))}</td><td class='num'>{_fmt(s * 100, 1)}%</td>"
                f"<td class='num'>{_fmt(s / p, 2) + '×' if pool_c and p > 0 else '—'}</td></tr>"
                for k, p, s in zip(names, ps, ss, strict=False)
            )
            parts.append(
                _figure(_png(fig), f"Share of each {key} in the pool and in the selection.")
                + f"<div><table><tr><th>{_e(key)}</th><th class='num'>pool</th><th class='num'>share</th>"
                f"<th class='num'>selected</th><th class='num'>share</th><th class='num'>ratio</th></tr>{rows}"
                "</table></div>"
            )
        if any(not (m.get("pool")) for m in mix.values()):
            parts.append('<p class="muted">Pool shares need the pool samples (<code>--pool-samples</code>).</p>')
        return "".join(parts) + "</div></section>"

    # ---------------------------------------------------------------- features
    def features(self, n: int, n_examples: int) -> str:
        enriched = (self.s.get("enriched") or [])[:n]
        head = '<section id="features"><h2>Over-represented features</h2>'
        if not enriched:
            return head + ('<p class="muted">No SAE feature statistics: the selection was not made on an SAE store '
                           "and no feature store was given.</p></section>")
        alpha = (self.s.get("config") or {}).get("alpha", 0.05)
        intro = (
            "<p class='muted'>Features active in a larger share of the selected samples than of the pool, ranked by "
            "the hypergeometric p-value of their active count (one-sided Fisher test, selected vs the rest), with "
            f"Benjamini–Hochberg q-values; <b>log-odds</b> is the log odds ratio with a "
            f"{_fmt((self.s.get('config') or {}).get('prior', 0.5))} pseudo-count. Bold q-values are below "
            f"α={_fmt(alpha)}. Highlighted: the token on which the feature fires most in the label corpus.</p>"
        )
        plt = _plt()
        fig, ax = plt.subplots(figsize=(5.6, 0.26 * len(enriched) + 1.0))
        y = np.arange(len(enriched))
        ax.barh(y, [r["log_odds"] for r in enriched], color=SEL_COLOR)
        ax.set_yticks(y, [self.name(int(r["feature"]))[:34] for r in enriched])
        ax.invert_yaxis()
        ax.set_xlabel("log odds ratio (selected vs rest)")
        ax.set_title("Most over-represented features", fontsize=10.5)
        rows = []
        for r in enriched:
            f = int(r["feature"])
            q = _fmt(r["q_value"])
            q = f"<b>{q}</b>" if r.get("significant") else q
            label, link, ctx = "", "", ""
            if self.labels is not None and f < self.labels.n_features:
                label = _e(self.labels.label(f)) or '<span class="muted">never fires in the label corpus</span>'
                url = self.labels.neuronpedia_url(f)
                link = f' <a href="{_e(url)}">Neuronpedia</a>' if url else ""
                ctx = "".join(_context(x) for x in self.labels.examples(f, n_examples))
            rows.append(
                f"<tr><td class='num'>{f}</td><td><span class='feat-label'>{label}</span>{link}{ctx}</td>"
                f"<td class='num'>{_fmt(r['selected'])}<br><span class='muted'>{_fmt(r['selected_rate'] * 100, 1)}%"
                f"</span></td><td class='num'>{_fmt(r['pool'])}<br><span class='muted'>"
                f"{_fmt(r['pool_rate'] * 100, 1)}%</span></td><td class='num'>{_fmt(r['log_odds'], 2)}</td>"
                f"<td class='num'>{q}</td></tr>"
            )
        table = (
            "<table class='features'><tr><th class='num'>feature</th><th>label and top-activating contexts</th>"
            "<th class='num'>selected</th><th class='num'>pool</th><th class='num'>log-odds</th>"
            f"<th class='num'>q-value</th></tr>{''.join(rows)}</table>"
        )
        if self.labels is None:
            table = ("<p class='note'>No feature labels: compute them with <code>mona labels</code> (or "
                     "<code>mona report --label-samples</code>) to see what each feature fires on.</p>" + table)
        plot = f'<div class="narrow">{_figure(_png(fig), "Log odds ratio of the top features.")}</div>'
        return head + intro + plot + table + "</section>"

    # ---------------------------------------------------------------- cards
    def cards(self, n: int) -> str:
        out = ['<section id="picks"><h2>Selected samples</h2>']
        if n < len(self.ex.samples):
            out.append(f"<p class='muted'>The first {n} of {len(self.ex.samples)} picks, best first.</p>")
        out.append('<div class="cards">')
        records = self.sel.records or [{} for _ in self.sel.ids]
        for row in self.ex.samples[:n]:
            i = int(row["rank"])
            rec = records[i] if i < len(records) else {}
            meta = " · ".join(_e(f"{k}: {rec[k]}") for k in ("domain", "source", "subset") if rec.get(k))
            extra = []
            if "relevance" in row and self.sel.method != "mona":
                extra.append(f"relevance {_fmt(row['relevance'])}")
            if row.get("n_active") is not None:
                extra.append(f"{row['n_active']} active features")
            if row.get("new_features") is not None:
                extra.append(f"{len(row['new_features'])} newly covered")
            if row.get("match"):
                extra.append(f"closest target {row['match']}")
            chips = "".join(
                f'<span class="chip" title="{_e(_chip_title(f))}"><b>{_e(self.name(int(f["feature"])))}</b> '
                f"{_fmt(f['share'] * 100, 1)}%</span>"
                for f in row.get("features", [])[:8]
            )
            out.append(
                f'<article class="card"><header><span class="rank">#{i + 1}</span>'
                f'<span class="id">{_e(row["id"])}</span><span>score <b>{_fmt(row["score"], 4)}</b></span></header>'
                f'<div class="muted">{meta}{" · " if meta and extra else ""}{_e(" · ".join(extra))}</div>'
                f'<div class="text">{_sample_html(rec)}</div><div>{chips}</div></article>'
            )
        out.append("</div></section>")
        return "".join(out)


_RELEVANT = {
    "mona": ("similarity", "aggregate", "binarize", "active_threshold", "targets", "quotas"),
    "mmr": ("similarity", "aggregate", "binarize", "active_threshold", "mmr_lambda", "mmr_candidates"),
    "greedy-coverage": ("active_threshold",),
    "simscale": ("active_threshold", "sim_threshold", "simscale_order"),
    "kcenter": ("center",),
    "nait": ("nait_candidate", "nait_layers", "nait_center", "targets"),
    "dense": ("aggregate", "center", "targets"),
    "tfidf": ("aggregate", "targets"),
    "bm25": ("aggregate", "bm25_k1", "bm25_b", "targets"),
    "sbert": ("aggregate", "targets"),
}


def _config_rows(cfg: dict[str, Any]) -> list[tuple[str, Any]]:
    """Method, budget, the method's own settings and every other non-default setting."""
    from mona.select import SelectConfig

    try:
        defaults = SelectConfig(method=cfg.get("method", "mona")).to_dict()
    except MonaError:
        defaults = {}
    keys = ["method", "n", "ratio", "seed", *_RELEVANT.get(cfg.get("method", ""), ())]
    keys += [k for k, v in cfg.items() if k not in keys and k in defaults and v != defaults[k]]
    return [(k, cfg[k]) for k in keys if k in cfg and cfg[k] is not None]


def _chip_title(f: dict[str, Any]) -> str:
    parts = [f"share {f['share']:.4f}"]
    for key in ("contribution", "value", "target"):
        if key in f:
            parts.append(f"{key} {f[key]:.4f}")
    return ", ".join(parts)


def _context(x: dict[str, Any]) -> str:
    raw = [t.replace("\n", "⏎").replace("\t", "⇥") for t in x["tokens"]]
    toks = [html.escape(t) for t in raw]
    c = x["center"]
    if 0 <= c < len(toks):
        shown = toks[c] if toks[c].strip() else toks[c].replace(" ", "␣") or "∅"
        toks[c] = f"<mark>{shown}</mark>"
    return f'<div class="ctx"><span class="act">{x["value"]:.2f}</span>{"".join(toks)}</div>'


def _sample_html(record: dict[str, Any], limit: int = 1500) -> str:
    from mona.data import to_sample

    try:
        sample = to_sample(record)
    except MonaError:
        return _e(str(record)[:limit])
    if sample.text is not None:
        return _e(sample.text[:limit])
    parts = []
    for turn in sample.messages:
        content = turn["content"]
        content = content if len(content) <= limit else content[:limit] + " …"
        parts.append(f'<span class="role">{_e(turn["role"])}</span>\n{_e(content)}')
    return "\n".join(parts)


CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary on PATH, or ``None``."""
    import shutil

    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(html_path: str | Path, png_path: str | Path, *, width: int = 1280, height: int = 2400,
               timeout: float = 120.0) -> Path:
    """Render ``html_path`` in headless Chromium (offline, throwaway profile) and save a PNG screenshot."""
    import subprocess
    import tempfile

    binary = find_chromium()
    if binary is None:
        raise MonaError("no Chromium found on PATH (Debian: apt-get install chromium)")
    png = Path(png_path).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mona-chromium-") as profile:
        cmd = [
            binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--hide-scrollbars", f"--user-data-dir={profile}", f"--screenshot={png}",
            f"--window-size={width},{height}", Path(html_path).resolve().as_uri(),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if not png.exists():
        raise MonaError(f"Chromium wrote no screenshot (exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
    return png
