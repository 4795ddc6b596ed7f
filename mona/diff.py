"""Diff two datasets by their SAE features: which features are over- or under-represented in A relative to B.

Each side is an embedding store (mode ``sae``), a selection folder (meaning the selected rows of the pool store
it was made from), or in Python a store object or ``(store, rows)``. Both sides must be embedded with the same
model, hook, SAE and pooling (:func:`mona.select.inputs.check_compatible`; a mismatch is a one-line error before
anything is computed).

Per feature, ``k_a`` of A's ``n_a`` samples and ``k_b`` of B's ``n_b`` have it active (pooled code above
``threshold``). The effect size is the log odds ratio of active in A vs in B with a pseudo-count ``prior`` in
each cell (as ``mona explain``'s enrichment), with ``z`` = log odds / its standard error; significance is
Fisher's exact two-sided test of the 2x2 table (:func:`mona.explain.stats.fisher_test`), Benjamini–Hochberg
corrected over the tested features (those active in at least ``min_count`` samples of A and B together). The
test treats A and B as independent samples; for a selection against the very pool it was drawn from, ``mona
explain``'s hypergeometric enrichment is the right test (diff a selection against a random selection instead).

Outputs (:meth:`DatasetDiff.save`): ``diff.parquet`` (every tested feature), ``diff.json`` (summary: both
sides, counts, the ``top`` most over- and under-represented features with labels and example samples — those
with the highest pooled value of the feature on each side) and ``diff.html`` (template ``diff.html.j2``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from mona.errors import ArtifactMismatch, MonaError
from mona.io import atomic_write, atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

DIFF_FORMAT = 1
DIFF_JSON, DIFF_PARQUET, DIFF_HTML = "diff.json", "diff.parquet", "diff.html"
TEMPLATE = "diff.html.j2"


@dataclass
class DiffConfig:
    """How two datasets are compared; every field is a ``mona diff`` flag."""

    threshold: float = 0.0
    """A feature counts as active in a sample when its pooled code is above this."""
    prior: float = 0.5
    """Pseudo-count added to each cell of the 2x2 table for the log odds ratio."""
    alpha: float = 0.05
    """A feature differs significantly when its Benjamini-Hochberg q-value is below this."""
    min_count: int = 1
    """Test only features active in at least this many samples of A and B together."""
    top: int = 20
    """Features listed each way (over- and under-represented in A) in diff.json and the report."""
    examples: int = 3
    """Example samples per listed feature and side (highest pooled value first)."""
    contexts: int = 2
    """Top-activating label contexts shown per listed feature in the report (needs feature labels)."""
    sample_chars: int = 200
    """Characters of each example sample's text kept in diff.json and the report."""

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise MonaError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.prior < 0:
            raise MonaError(f"prior must be >= 0, got {self.prior}")
        for name in ("min_count", "top", "examples", "contexts", "sample_chars"):
            if int(getattr(self, name)) < 0:
                raise MonaError(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclass
class Side:
    """One side of a diff: a store and (for a selection) the rows of it that belong to the side."""

    name: str
    store: Any
    rows: np.ndarray | None = None
    kind: str = "store"
    path: str | None = None
    texts: dict[str, str] = field(default_factory=dict)
    """Sample id -> text, for example samples (from ``samples`` or a selection's records)."""

    @property
    def ids(self) -> list[str]:
        ids = self.store.ids
        return list(ids) if self.rows is None else [str(ids[int(r)]) for r in self.rows]

    def codes(self) -> sp.csr_matrix:
        if self.rows is None:
            return sp.csr_matrix(self.store.codes())
        if callable(getattr(self.store, "rows", None)):
            return sp.csr_matrix(self.store.rows(self.rows))
        return sp.csr_matrix(self.store.codes()[self.rows])

    def describe(self) -> dict[str, Any]:
        m = getattr(self.store, "manifest", None) or {}
        from mona.select.inputs import store_path

        return {"kind": self.kind, "path": self.path, "store": store_path(self.store), "samples": len(self.ids),
                "sae": (m.get("sae") or {}).get("name"), "hook": m.get("hook"), "pooling": m.get("pooling")}


@dataclass
class DatasetDiff:
    """The result of :func:`diff`: a table over every tested feature and a JSON-able summary."""

    table: dict[str, np.ndarray]
    summary: dict[str, Any]
    labels: Any = None

    @property
    def over(self) -> list[dict[str, Any]]:
        """Features most over-represented in A (most significant first), with labels and examples."""
        return self.summary["over"]

    @property
    def under(self) -> list[dict[str, Any]]:
        return self.summary["under"]

    def save(self, out_dir: str | Path, *, report: bool = True) -> Path:
        """Write ``diff.json``, ``diff.parquet`` and (``report``) ``diff.html`` into ``out_dir``."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        table = pa.table({k: np.asarray(v) for k, v in self.table.items()})
        atomic_write(out / DIFF_PARQUET, lambda tmp: pq.write_table(table, tmp))
        atomic_write_json(out / DIFF_JSON, self.summary)
        if report:
            atomic_write_text(out / DIFF_HTML, render_diff(self))
        log.info("wrote the diff of %d features to %s", len(self.table["feature"]), out)
        return out


# --------------------------------------------------------------------------------------------------------
# Sides
# --------------------------------------------------------------------------------------------------------


def resolve_side(spec: Any, name: str, samples: Any = None) -> Side:
    """A :class:`Side` from a store folder, a selection folder, a store object or ``(store, rows)``."""
    from mona.select.inputs import open_any

    if isinstance(spec, Side):
        side = spec
    elif isinstance(spec, tuple) and len(spec) == 2:
        side = Side(name, open_any(spec[0]), np.asarray(spec[1], np.int64), "rows")
    elif isinstance(spec, (str, Path)):
        p = Path(spec)
        if (p / "selection.json").exists():
            side = _selection_side(p, name)
        elif (p / "manifest.json").exists():
            side = Side(name, open_any(p), None, "store", str(p))
        else:
            raise MonaError(f"{name}: {p} is neither an embedding store (`mona embed`) nor a selection folder")
    else:
        side = Side(name, spec, None, "store")
    if samples is not None:
        side.texts.update(_texts(samples))
    return side


def _selection_side(path: Path, name: str) -> Side:
    from mona.select import load_selection
    from mona.select.inputs import open_any

    sel = load_selection(path)
    recorded = (sel.info.get("pool") or {}).get("path")
    cands = [c for c in ((Path(recorded), path / recorded) if recorded else ()) if (c / "manifest.json").exists()]
    if not cands:
        raise MonaError(f"{name}: selection {path} records no pool store that exists ({recorded}); pass the store")
    store = open_any(cands[0])
    ids = store.ids
    for row, sid in zip(sel.rows, sel.ids, strict=False):
        if row >= len(ids) or str(ids[int(row)]) != str(sid):
            raise ArtifactMismatch(f"{name}: selection pick {sid!r} is not row {row} of its pool store {cands[0]}")
    side = Side(name, store, np.asarray(sel.rows, np.int64), "selection", str(path))
    if sel.records:
        try:
            side.texts.update(_texts([{**r, "id": i} for r, i in zip(sel.records, sel.ids, strict=False)]))
        except MonaError:  # records in a form mona cannot read as samples: examples without text
            log.info("%s: the selection's records are not readable as samples; examples without text", name)
    return side


def _texts(samples: Any) -> dict[str, str]:
    from mona.data import Sample, load_samples

    items = samples if isinstance(samples, list) and samples and isinstance(samples[0], Sample) else None
    return {str(s.id): s.plain for s in items or load_samples(samples)}


def check_sides(a: Side, b: Side) -> None:
    """Both sides SAE stores of the same model, hook, SAE and pooling (one-line error otherwise)."""
    from mona.select.inputs import check_compatible, store_mode

    for side in (a, b):
        mode = store_mode(side.store)
        if mode != "sae":
            raise MonaError(f"{side.name}: a feature diff needs SAE stores; this one has mode {mode!r}")
        if not len(side.ids):
            raise MonaError(f"{side.name} has no samples")
    try:
        check_compatible(a.store, b.store, what="B")
    except ArtifactMismatch as exc:
        raise ArtifactMismatch(f"A and B were not embedded the same way, so their features are not comparable: "
                               f"{exc}") from None


# --------------------------------------------------------------------------------------------------------
# The diff
# --------------------------------------------------------------------------------------------------------


def diff(
    a: Any, b: Any, *, samples_a: Any = None, samples_b: Any = None, labels: Any = None,
    config: DiffConfig | None = None, out_dir: str | Path | None = None, **overrides: Any,
) -> DatasetDiff:
    """Compare datasets ``a`` and ``b`` feature by feature (see the module docstring); saved to ``out_dir`` when
    given. ``labels``: feature labels (object or folder) for names and contexts, ``"auto"`` for the cached labels
    of the stores' SAE when there are some, ``None`` for none. ``overrides`` replace single config fields."""
    import dataclasses

    config = dataclasses.replace(config or DiffConfig(), **overrides) if overrides else (config or DiffConfig())
    side_a, side_b = resolve_side(a, "A", samples_a), resolve_side(b, "B", samples_b)
    check_sides(side_a, side_b)
    labels = _labels(labels, side_a.store)
    Xa, Xb = side_a.codes(), side_b.codes()
    if Xa.shape[1] != Xb.shape[1]:
        raise ArtifactMismatch(f"A has {Xa.shape[1]} features but B has {Xb.shape[1]}")
    table = feature_table(Xa, Xb, config)
    summary = {
        "format_version": DIFF_FORMAT,
        "a": {**side_a.describe(), "active_per_sample": _active_per_row(Xa, config.threshold)},
        "b": {**side_b.describe(), "active_per_sample": _active_per_row(Xb, config.threshold)},
        "config": asdict(config),
        "test": "two-sided Fisher exact test of active counts (A vs B), Benjamini-Hochberg q-values; effect = "
                f"log odds ratio with {config.prior:g} added to each cell",
        "counts": _counts(table, Xa.shape[1], config.alpha),
        "labels": str(labels.path) if labels is not None and labels.path is not None else None,
    }
    for key, sign in (("over", 1), ("under", -1)):
        summary[key] = _listed(table, sign, (side_a, Xa), (side_b, Xb), labels, config)
    result = DatasetDiff(table, summary, labels)
    if out_dir is not None:
        result.save(out_dir)
    return result


def feature_table(Xa: sp.csr_matrix, Xb: sp.csr_matrix, config: DiffConfig) -> dict[str, np.ndarray]:
    """Per tested feature: active counts and shares on each side, log odds, z, p, q, mean pooled values; sorted
    most significant first (p-value, then larger |log odds|, then feature id)."""
    from mona.explain.stats import active_counts, bh, fisher_test, log_odds_ratio

    na, nb = Xa.shape[0], Xb.shape[0]
    ka, kb = active_counts(Xa, config.threshold), active_counts(Xb, config.threshold)
    tested = np.flatnonzero((ka + kb) >= max(config.min_count, 1))
    ka, kb = ka[tested], kb[tested]
    log_odds, z = log_odds_ratio(ka, na, kb, nb, config.prior)
    p = fisher_test(ka, na, kb, nb, alternative="two-sided")
    q = bh(p)
    mean_a = np.asarray(Xa.sum(axis=0)).ravel()[tested] / max(na, 1)
    mean_b = np.asarray(Xb.sum(axis=0)).ravel()[tested] / max(nb, 1)
    order = np.lexsort((tested, -np.abs(log_odds), p))
    table = {
        "feature": tested.astype(np.int64), "a": ka, "b": kb, "a_rate": ka / max(na, 1), "b_rate": kb / max(nb, 1),
        "log_odds": log_odds, "z": z, "p_value": p, "q_value": q, "a_mean": mean_a, "b_mean": mean_b,
        "significant": q < config.alpha,
    }
    return {k: np.asarray(v)[order] for k, v in table.items()}


def _counts(table: dict[str, np.ndarray], width: int, alpha: float) -> dict[str, int]:
    sig = table["significant"]
    return {"features": int(width), "tested": int(len(sig)), "significant": int(sig.sum()),
            "over": int((sig & (table["log_odds"] > 0)).sum()), "under": int((sig & (table["log_odds"] < 0)).sum())}


def _active_per_row(X: sp.csr_matrix, threshold: float) -> float:
    return float((X.data > threshold).sum() / max(X.shape[0], 1))


def _labels(labels: Any, store: Any) -> Any:
    if labels is None:
        return None
    if isinstance(labels, str) and labels == "auto":
        from mona.features import find_labels
        from mona.labels import load_labels

        path = find_labels((getattr(store, "manifest", None) or {}).get("sae") or {})
        if path is None:
            log.info("no cached feature labels for the stores' SAE; the diff lists feature ids only")
        return load_labels(path) if path is not None else None
    from mona.features import check_labels_match, resolve_labels

    labels = resolve_labels(labels)
    check_labels_match(labels, store)
    return labels


def _listed(table: dict[str, np.ndarray], sign: int, a: tuple[Side, sp.csr_matrix], b: tuple[Side, sp.csr_matrix],
            labels: Any, config: DiffConfig) -> list[dict[str, Any]]:
    """The ``top`` features with log odds of ``sign``, with their statistics, label and example samples."""
    picked = np.flatnonzero(np.sign(table["log_odds"]) == sign)[: config.top]
    feats = table["feature"][picked]
    ex_a, ex_b = _examples(a, feats, config), _examples(b, feats, config)
    out = []
    for j, i in enumerate(picked):
        f = int(table["feature"][i])
        row = {k: _py(v[i]) for k, v in table.items()}
        known = labels is not None and f < labels.n_features
        row.update(label=labels.label(f) if known else None, url=labels.neuronpedia_url(f) if known else None,
                   examples_a=ex_a[j], examples_b=ex_b[j])
        out.append(row)
    return out


def _examples(side: tuple[Side, sp.csr_matrix], feats: np.ndarray, config: DiffConfig) -> list[list[dict]]:
    """Per feature, the side's samples with the highest pooled value of it (id, value, text when known)."""
    s, X = side
    if not len(feats) or not config.examples:
        return [[] for _ in feats]
    cols = sp.csc_matrix(X[:, feats])
    ids = s.ids
    out = []
    for i in range(len(feats)):
        lo, hi = cols.indptr[i], cols.indptr[i + 1]
        rows, vals = cols.indices[lo:hi], cols.data[lo:hi]
        keep = np.argsort(-vals, kind="stable")[: config.examples]
        items = []
        for r in keep:
            if vals[r] <= config.threshold:
                continue
            sid = ids[int(rows[r])]
            text = s.texts.get(sid)
            items.append({"id": sid, "value": float(vals[r]),
                          "text": _clip(text, config.sample_chars) if text is not None else None})
        out.append(items)
    return out


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n].rstrip() + " …"


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


# --------------------------------------------------------------------------------------------------------
# The HTML page
# --------------------------------------------------------------------------------------------------------


def render_diff(result: DatasetDiff) -> str:
    """The diff as one self-contained HTML page (template ``diff.html.j2``, autoescaped, plots inlined)."""
    from mona.report import _environment

    s = result.summary
    labels = result.labels
    n_ctx = int(s["config"].get("contexts", 2))
    sections = []
    for key, title in (("over", "More common in A"), ("under", "More common in B")):
        rows = [{**r, "contexts": _contexts(labels, r["feature"], n_ctx)} for r in s[key]]
        sections.append({"key": key, "title": title, "rows": rows})
    data = {
        "title": f"mona feature diff — {_side_name(s['a'])} vs {_side_name(s['b'])}",
        "a": s["a"], "b": s["b"], "counts": s["counts"], "config": s["config"], "test": s["test"],
        "has_labels": labels is not None, "sections": sections,
        "figures": {"volcano": _volcano(result.table, s["config"]["alpha"]), "bars": _bars(s, labels)},
    }
    return _environment().get_template(TEMPLATE).render(**data)


def _side_name(d: dict[str, Any]) -> str:
    path = d.get("path") or d.get("store")
    return Path(path).name if path else d.get("kind", "?")


def _contexts(labels: Any, f: int, n: int) -> list[dict[str, Any]]:
    if labels is None or f >= labels.n_features or not n:
        return []
    from mona.report.page import _token_context

    return [_token_context(x) for x in labels.examples(f, n)]


def _volcano(table: dict[str, np.ndarray], alpha: float) -> str | None:
    from mona.report.plots import POOL_COLOR, SEL_COLOR, _pyplot, png

    if not len(table["feature"]):
        return None
    fig, ax = _pyplot().subplots(figsize=(5.6, 3.4))
    y = -np.log10(np.maximum(table["p_value"], 1e-300))
    sig = table["significant"]
    ax.scatter(table["log_odds"][~sig], y[~sig], s=6, color=POOL_COLOR, alpha=0.6, label="not significant")
    ax.scatter(table["log_odds"][sig], y[sig], s=8, color=SEL_COLOR, alpha=0.8, label=f"q < {alpha:g}")
    ax.axvline(0, color="#999", lw=0.8)
    ax.set_xlabel("log odds ratio (A vs B)")
    ax.set_ylabel("-log10 p")
    ax.set_title("Every tested feature", fontsize=10.5)
    ax.legend(frameon=False, fontsize=9)
    return png(fig)


def _png_quietly(fig: Any) -> str:
    """:func:`mona.report.plots.png`, without matplotlib's warnings about glyphs its font lacks (labels may
    hold any script)."""
    import warnings

    from mona.report.plots import png

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        return png(fig)


def _bars(s: dict[str, Any], labels: Any) -> str | None:
    from mona.report.plots import POOL_COLOR, SEL_COLOR, _pyplot

    rows = s["over"][:12] + s["under"][:12]
    if not rows:
        return None
    fig, ax = _pyplot().subplots(figsize=(5.6, 0.26 * len(rows) + 1.0))
    y = np.arange(len(rows))
    names = [f"#{r['feature']}" + (f" {r['label']}" if r.get("label") else "") for r in rows]
    ax.barh(y - 0.2, [r["a_rate"] for r in rows], height=0.4, color=SEL_COLOR, label="A")
    ax.barh(y + 0.2, [r["b_rate"] for r in rows], height=0.4, color=POOL_COLOR, label="B")
    ax.set_yticks(y, [n[:34] for n in names])
    ax.invert_yaxis()
    ax.set_xlabel("share of samples where the feature is active")
    ax.set_title("Most over- (top) and under-represented features in A", fontsize=10.5)
    ax.legend(frameon=False, fontsize=9)
    return _png_quietly(fig)
