"""Reading the runs: per subset, the held-out loss, its gain over the base model and the share of the in-domain
reference's gain; as rows, a terminal table and a plot."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

EVAL_LABELS = {"eval": "held-out", "cross": "cross-source"}


def summarize(runs: Sequence[dict[str, Any]], eval_names: Sequence[str]) -> list[dict[str, Any]]:
    """One row per subset group (base, each selection, random, reference), in run order: mean loss over the
    group's runs (standard deviation over random seeds), gain = base loss − loss (positive = the subset helped),
    share = gain / the reference's gain (``None`` without a reference or when the reference did not help)."""
    base = next((r for r in runs if r["kind"] == "base"), None)
    ref = next((r for r in runs if r["kind"] == "reference"), None)
    groups: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault(run["group"], []).append(run)
    rows = []
    for group, members in groups.items():
        row: dict[str, Any] = {"group": group, "kind": members[0]["kind"], "runs": len(members),
                               "n_train": members[0]["n_train"], "eval": {}}
        for name in eval_names:
            losses = np.array([m["eval"][name]["loss"] for m in members], dtype=np.float64)
            loss = float(losses.mean())
            cell: dict[str, Any] = {"loss": loss, "std": float(losses.std(ddof=1)) if len(losses) > 1 else None,
                                    "losses": losses.tolist(), "gain": None, "share": None}
            if base is not None and row["kind"] != "base":
                cell["gain"] = base["eval"][name]["loss"] - loss
                if ref is not None:
                    ref_gain = base["eval"][name]["loss"] - ref["eval"][name]["loss"]
                    cell["share"] = cell["gain"] / ref_gain if ref_gain > 0 else None
            row["eval"][name] = cell
        rows.append(row)
    return rows


def _num(value: float | None, digits: int = 3, signed: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def table_rows(rows: Sequence[dict[str, Any]], eval_names: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """Header and formatted cells: subset, size, then loss (± sd), gain and share per evaluation set."""
    header = ["subset", "n", "runs"]
    for name in eval_names:
        label = EVAL_LABELS.get(name, name)
        header += [f"{label} loss", "gain", "share of ref."]
    body = []
    for row in rows:
        cells = [row["group"], str(row["n_train"]), str(row["runs"])]
        for name in eval_names:
            c = row["eval"][name]
            loss = _num(c["loss"]) + (f" ± {c['std']:.3f}" if c["std"] is not None else "")
            share = "—" if c["share"] is None else f"{100 * c['share']:.0f}%"
            cells += [loss, _num(c["gain"], signed=True), share]
        body.append(cells)
    return header, body


def format_table(rows: Sequence[dict[str, Any]], eval_names: Sequence[str]) -> str:
    """The result table as aligned plain text."""
    header, body = table_rows(rows, eval_names)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def plot_png(rows: Sequence[dict[str, Any]], eval_names: Sequence[str]) -> bytes:
    """Held-out loss per subset (one panel per evaluation set): bars, the random seeds as dots, the base model's
    loss as a dashed line."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(eval_names), figsize=(4.2 * len(eval_names) + 0.6, 3.4), squeeze=False)
    colors = {"base": "#adb5bd", "selection": "#d9480f", "random": "#8aa1c1", "reference": "#2b8a3e"}
    for ax, name in zip(axes[0], eval_names):
        x = np.arange(len(rows))
        losses = [r["eval"][name]["loss"] for r in rows]
        ax.bar(x, losses, color=[colors.get(r["kind"], "#495057") for r in rows], width=0.65)
        for i, r in enumerate(rows):
            if r["runs"] > 1:
                ax.plot([i] * r["runs"], r["eval"][name]["losses"], "o", color="#1c1c1c", ms=3)
        base = next((r["eval"][name]["loss"] for r in rows if r["kind"] == "base"), None)
        if base is not None:
            ax.axhline(base, color="#495057", ls="--", lw=1)
        every = [v for r in rows for v in r["eval"][name]["losses"]]
        lo, hi = min(every), max(every)
        pad = max(hi - lo, 1e-3) * 0.6
        ax.set_ylim(max(lo - pad, 0.0), hi + pad * 0.5)
        ax.set_xticks(x, [r["group"][:16] for r in rows], rotation=30, ha="right")
        ax.set_ylabel("loss per response token (nats)")
        ax.set_title(EVAL_LABELS.get(name, name), fontsize=10.5)
        ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
