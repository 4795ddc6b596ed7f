"""The report's plots: matplotlib figures (Agg backend) returned as base64 PNG data URIs."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np

POOL_COLOR, SEL_COLOR = "#8aa1c1", "#d9480f"


def png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.spines.top": False, "axes.spines.right": False})
    return plt


def hist(pool: np.ndarray | None, selected: np.ndarray, xlabel: str, title: str) -> str:
    fig, ax = _pyplot().subplots(figsize=(5.6, 3.0))
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
    return png(fig)


def rank_plot(scores: np.ndarray) -> str:
    fig, ax = _pyplot().subplots(figsize=(5.6, 3.0))
    ax.plot(np.arange(len(scores)), scores, color=SEL_COLOR, lw=1.6)
    ax.set_xlabel("rank")
    ax.set_ylabel("score")
    ax.set_title("Score by rank (pool scores are not defined for this method)", fontsize=10.5)
    return png(fig)


def mix_plot(key: str, names: list[str], pool_shares: list[float] | None, sel_shares: list[float]) -> str:
    fig, ax = _pyplot().subplots(figsize=(5.6, 0.32 * len(names) + 1.0))
    y = np.arange(len(names))
    if pool_shares is not None:
        ax.barh(y - 0.2, pool_shares, height=0.4, color=POOL_COLOR, label="pool")
    ax.barh(y + 0.2 if pool_shares is not None else y, sel_shares, height=0.4, color=SEL_COLOR, label="selected")
    ax.set_yticks(y, [n[:28] for n in names])
    ax.invert_yaxis()
    ax.set_xlabel("share of samples")
    ax.set_title(f"{key}: selection vs pool", fontsize=10.5)
    ax.legend(frameon=False, fontsize=9)
    return png(fig)


def log_odds_plot(names: list[str], log_odds: list[float]) -> str:
    fig, ax = _pyplot().subplots(figsize=(5.6, 0.26 * len(names) + 1.0))
    y = np.arange(len(names))
    ax.barh(y, log_odds, color=SEL_COLOR)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlabel("log odds ratio (selected vs rest)")
    ax.set_title("Most over-represented features", fontsize=10.5)
    return png(fig)
