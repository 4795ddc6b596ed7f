"""The report page's data: plain dicts and lists gathered from a selection, its explanation and feature labels.

Numbers stay numbers (the template formats them with :func:`fmt`); plots are base64 PNG data URIs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mona.errors import MonaError
from mona.report import plots
from mona.report.config import ReportConfig


def gather(sel: Any, ex: Any, labels: Any, config: ReportConfig) -> dict[str, Any]:
    """Everything the template shows, from a selection, its explanation and (optional) feature labels."""
    s = ex.summary
    return {
        "method": sel.method,
        "counts": {"selected": s["counts"].get("selected"), "pool": s["counts"].get("pool")},
        "summary": _summary(s),
        "figures": _distribution_figures(sel, ex),
        "mix": _mix(s.get("mix") or {}),
        "features": _enrichment(s, labels, config),
        "cards": _cards(sel, ex, labels, config),
    }


def _summary(s: dict[str, Any]) -> dict[str, Any]:
    cfg = s.get("select_config") or {}
    stores = s.get("stores") or {}
    pool = stores.get("features") or stores.get("pool") or {}
    return {
        "mean_score": (s["scores"].get("selected") or {}).get("mean"),
        "coverage": s.get("coverage") or {},
        "significant": s.get("significant_features"),
        "semantics": s.get("feature_semantics"),
        "settings": _method_settings(cfg),
        "store": [(k, pool[k]) for k in ("path", "model", "sae", "hook", "mode", "pooling", "span") if pool.get(k)],
        "targets": list(s.get("target_coverage") or []),
    }


def _method_settings(config: dict[str, Any]) -> list[tuple[str, Any]]:
    """The settings rows of a saved selection config (``SelectConfig.to_dict()``): method, budget, seed, the
    target handling when several target sets are weighed, then every one of the method's own options."""
    head = [(k, config[k]) for k in ("method", "n", "ratio", "seed") if config.get(k) is not None]
    several = config.get("targets") == "quota" or config.get("quotas") is not None
    targets = [(k, config[k]) for k in ("targets", "quotas") if several and config.get(k) is not None]
    steering = [(k, config[k]) for k in ("exclude_features", "require_features", "boost_features", "target_features")
                if config.get(k)]
    return head + targets + steering + list((config.get("options") or {}).items())


def _shows_relevance(method: str) -> bool:
    """Whether a pick's card shows its relevance to the target next to its score: not when the method's score
    is that relevance (the method says so)."""
    from mona.select import get_method

    try:
        return not get_method(method).scores_are_relevance
    except MonaError:
        return True


def _distribution_figures(sel: Any, ex: Any) -> dict[str, str | None]:
    """Score (relevance over the pool, or score by rank), active-feature and length histograms as data URIs."""
    pool = ex.pool
    figs: dict[str, str | None] = {"relevance": None, "rank": None, "n_active": None, "length": None}
    rel = pool["relevance"].astype(np.float64) if pool is not None and "relevance" in pool else None
    if rel is not None and np.isfinite(rel).any():
        ok = np.isfinite(rel)
        figs["relevance"] = plots.hist(rel[ok], rel[pool["selected"].astype(bool) & ok], "relevance to the target",
                                  "Score: selected vs pool")
    else:
        figs["rank"] = plots.rank_plot(np.asarray(sel.scores, dtype=np.float64))
    if pool is not None:
        sel_mask = pool["selected"].astype(bool)
        for key, xlabel in (("n_active", "active SAE features per sample"), ("length", "tokens pooled per sample")):
            if key in pool:
                v = pool[key].astype(np.float64)
                figs[key] = plots.hist(v, v[sel_mask], xlabel, f"{xlabel}: selected vs pool")
    return figs


def _mix(mix: dict[str, Any]) -> dict[str, Any]:
    """Per record field (domain, source, ...): counts and shares in the pool and the selection, and a bar plot."""
    tables = []
    for key, m in mix.items():
        sel_c, pool_c = m.get("selected") or {}, m.get("pool") or {}
        names = sorted(set(sel_c) | set(pool_c), key=lambda k: (-(pool_c.get(k, 0)), -sel_c.get(k, 0), k))[:20]
        n_sel, n_pool = max(sum(sel_c.values()), 1), max(sum(pool_c.values()), 1)
        ps = [pool_c.get(k, 0) / n_pool for k in names]
        ss = [sel_c.get(k, 0) / n_sel for k in names]
        rows = [{
            "name": k,
            "pool": pool_c.get(k, 0) if pool_c else None,
            "pool_share": p if pool_c else None,
            "selected": sel_c.get(k, 0),
            "selected_share": s,
            "ratio": s / p if pool_c and p > 0 else None,
        } for k, p, s in zip(names, ps, ss)]
        tables.append({"key": key, "rows": rows, "figure": plots.mix_plot(key, names, ps if pool_c else None, ss)})
    return {"tables": tables, "needs_pool": any(not m.get("pool") for m in mix.values())}


def _enrichment(s: dict[str, Any], labels: Any, config: ReportConfig) -> dict[str, Any]:
    """The most over-represented features with their statistics, labels and top-activating contexts."""
    enriched = (s.get("enriched") or [])[: config.features]
    rows = []
    for r in enriched:
        f = int(r["feature"])
        known = labels is not None and f < labels.n_features
        rows.append({
            **{k: r[k] for k in ("selected", "selected_rate", "pool", "pool_rate", "log_odds", "q_value")},
            "feature": f,
            "significant": bool(r.get("significant")),
            "label": labels.label(f) if known else None,
            "url": labels.neuronpedia_url(f) if known else None,
            "contexts": [_token_context(x) for x in labels.examples(f, config.examples)] if known else [],
        })
    names = [_feature_name(labels, r["feature"])[:34] for r in rows]
    figure = plots.log_odds_plot(names, [r["log_odds"] for r in rows]) if rows else None
    explain_cfg = s.get("config") or {}
    return {"rows": rows, "figure": figure, "has_labels": labels is not None,
            "alpha": explain_cfg.get("alpha", 0.05), "prior": explain_cfg.get("prior", 0.5)}


def _cards(sel: Any, ex: Any, labels: Any, config: ReportConfig) -> dict[str, Any]:
    """One card per pick, best first: rank, id, score, record fields, text and top features."""
    records = sel.records or [{} for _ in sel.ids]
    items = []
    for row in ex.samples[: config.cards]:
        i = int(row["rank"])
        rec = records[i] if i < len(records) else {}
        items.append({
            "rank": i + 1,
            "id": row["id"],
            "score": row["score"],
            "meta": [f"{k}: {rec[k]}" for k in ("domain", "source", "subset") if rec.get(k)],
            "relevance": row["relevance"] if "relevance" in row and _shows_relevance(sel.method) else None,
            "n_active": row.get("n_active"),
            "new_features": len(row["new_features"]) if row.get("new_features") is not None else None,
            "match": row.get("match"),
            **_sample_text(rec, config.sample_chars),
            "chips": [{"name": _feature_name(labels, int(f["feature"])), "share": f["share"], "title": _chip_title(f)}
                      for f in row.get("features", [])[:8]],
        })
    return {"picks": items, "shown": min(config.cards, len(ex.samples)), "total": len(ex.samples)}


def _feature_name(labels: Any, f: int) -> str:
    label = labels.label(f) if labels is not None and f < labels.n_features else ""
    return f"#{f}" + (f" {label}" if label else "")


def _chip_title(f: dict[str, Any]) -> str:
    parts = [f"share {f['share']:.4f}"]
    parts += [f"{key} {f[key]:.4f}" for key in ("contribution", "value", "target") if key in f]
    return ", ".join(parts)


def _token_context(x: dict[str, Any]) -> dict[str, Any]:
    """A label example split around its most-activating token (``mark``; ``None`` when out of range)."""
    toks = [t.replace("\n", "⏎").replace("\t", "⇥") for t in x["tokens"]]
    c = x["center"]
    if not 0 <= c < len(toks):
        return {"value": float(x["value"]), "before": "".join(toks), "mark": None, "after": ""}
    mark = toks[c] if toks[c].strip() else toks[c].replace(" ", "␣") or "∅"
    return {"value": float(x["value"]), "before": "".join(toks[:c]), "mark": mark, "after": "".join(toks[c + 1:])}


def _sample_text(record: dict[str, Any], limit: int) -> dict[str, Any]:
    """``{"text": ..., "turns": None}`` for plain text, ``{"text": None, "turns": [{"role", "content"}]}`` for chats."""
    from mona.data import to_sample

    try:
        sample = to_sample(record)
    except MonaError:
        return {"text": str(record)[:limit], "turns": None}
    if sample.text is not None:
        return {"text": sample.text[:limit], "turns": None}
    turns = [{"role": t["role"], "content": t["content"] if len(t["content"]) <= limit else t["content"][:limit] + " …"}
             for t in sample.messages]
    return {"text": None, "turns": turns}


def fmt(x: Any, digits: int = 3) -> str:
    """A number for the page: thousands separators, a few significant digits, yes/no, "—" for missing."""
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
