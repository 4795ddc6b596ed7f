"""One self-contained HTML report of a selection: summary, distributions, domain mix, features, picks.

The page is the Jinja2 template ``mona/templates/report.html.j2`` (autoescaped), filled with the plain data that
:func:`mona.report.page.gather` collects from the selection folder, its explanation (running
:func:`mona.explain.explain` first when there is none) and, optionally, feature labels (:mod:`mona.labels`) for the
feature names and example contexts. It has no external resources: the CSS is inlined and every plot is a
matplotlib PNG embedded as base64, so the file can be mailed, archived or opened offline. What the page shows is a
:class:`ReportConfig`.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from mona.errors import MonaError
from mona.io import atomic_write_text
from mona.report.chromium import CHROMIUM_NAMES, find_chromium, screenshot
from mona.report.config import ReportConfig
from mona.report.page import fmt, gather

__all__ = ["CHROMIUM_NAMES", "REPORT_HTML", "ReportConfig", "find_chromium", "gather", "render_report", "screenshot"]

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent.parent / "templates"
TEMPLATE = "report.html.j2"
REPORT_HTML = "report.html"


def render_report(
    selection: str | Path,
    *,
    explanation: Any = None,
    labels: Any = None,
    pool_samples: Any = None,
    out: str | Path | None = None,
    config: ReportConfig | None = None,
    tune: str | Path | None = None,
    **overrides: Any,
) -> Path:
    """Write the HTML report of the selection folder ``selection``; returns its path.

    Args:
        explanation: an :class:`~mona.explain.Explanation` or its folder; default: the one in the selection
            folder, computed (and saved there) if missing.
        labels: :class:`~mona.labels.FeatureLabels` or a label folder (feature names and example contexts).
        pool_samples: the pool's samples (file or list), for the domain/source mix when explaining here.
        out: the HTML file to write (default ``<selection>/report.html``).
        config: what the page shows; ``overrides`` (``cards=``, ``features=``, ...) replace single fields of it.
        tune: a ``tune.json`` (or its folder) from ``mona tune`` to show as a section; default: the selection
            folder's own ``tune.json``, if any.
    """
    config = _with_overrides(config or ReportConfig(), overrides)
    sel_dir = Path(selection)
    sel, ex, labels = _load(sel_dir, explanation, labels, pool_samples)
    data = gather(sel, ex, labels, config)
    from mona.tune.section import tune_section

    data["tune"] = tune_section(sel_dir, tune)
    data["title"] = config.title or f"mona selection report — {sel_dir.name}"
    doc = _environment().get_template(TEMPLATE).render(**data)
    path = Path(out) if out is not None else sel_dir / REPORT_HTML
    atomic_write_text(path, doc)
    log.info("wrote the report to %s (%.0f kB)", path, path.stat().st_size / 1024)
    return path


def _with_overrides(config: ReportConfig, overrides: dict[str, Any]) -> ReportConfig:
    names = {f.name for f in dataclasses.fields(ReportConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise MonaError(f"unknown report option(s) {unknown}; valid ones: {', '.join(sorted(names))}")
    return dataclasses.replace(config, **overrides) if overrides else config


def _load(sel_dir: Path, explanation: Any, labels: Any, pool_samples: Any) -> tuple[Any, Any, Any]:
    """The selection, its explanation and the feature labels (``None`` when there are none)."""
    from mona.explain import EXPLAIN_JSON, Explanation, explain, load_explanation
    from mona.select import load_selection

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
    return sel, ex, labels


def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = fmt
    env.filters["pct"] = lambda x: "—" if x is None else fmt(float(x) * 100, 1) + "%"
    return env
