"""Explain's per-pool-sample table: selected or not, rank, active features, length, relevance, domain/source."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from mona.errors import MonaError
from mona.explain.stats import LABEL_KEYS
from mona.select.inputs import check_samples
from mona.select.matrices import PoolMatrices
from mona.select.methods.base import Context, Method

log = logging.getLogger(__name__)


def pool_table(sel: Any, method: Method, pool: Any, fstore: Any, X: Any, groups: list, thr: float,
               pool_samples: Any, pm: PoolMatrices | None = None) -> dict[str, np.ndarray] | None:
    """One row per pool sample (``explain_pool.parquet``), or None when neither a store nor samples are known."""
    store = fstore if fstore is not None else pool
    samples = _pool_samples(pool_samples if pool_samples is not None else sel.info.get("pool_samples"), store)
    if store is None and samples is None:
        return None
    ids = [str(i) for i in store.ids] if store is not None else [str(s.id) for s in samples]
    rank = np.full(len(ids), -1, np.int64)
    rank[sel.rows] = np.arange(len(sel))
    table: dict[str, np.ndarray] = {"id": np.array(ids, dtype=object), "row": np.arange(len(ids)),
                                   "selected": rank >= 0, "rank": rank}
    if X is not None:
        table["n_active"] = np.diff(sp.csr_matrix(X.multiply(X > thr)).indptr).astype(np.int64)
    lengths = getattr(store, "lengths", None) if store is not None else None
    if lengths is not None and len(lengths) == len(ids):
        table["length"] = np.asarray(lengths, np.int64)
    rel = _relevance(sel, method, pool, groups, pm)
    table["relevance"] = rel if rel is not None else np.full(len(ids), np.nan)
    if samples is not None:
        for key in LABEL_KEYS:
            vals = [s.record.get(key) for s in samples]
            if any(v is not None for v in vals):
                table[key] = np.array(["" if v is None else str(v) for v in vals], dtype=object)
    return table


def _relevance(sel: Any, method: Method, pool: Any, groups: list, pm: PoolMatrices | None) -> np.ndarray | None:
    """Every pool row's relevance to the target(s), recomputed from the stores by the selection's own method."""
    if pool is None or not groups or method.target != "store":
        return None
    ctx = Context(pool, None, sel.config, len(sel), sae=getattr(pm, "sae", None))
    if pm is not None and pm.store is pool and pm.options is sel.config.options:
        ctx._matrices = pm
    try:
        return method.relevance(ctx, groups)
    except MonaError as exc:
        log.warning("pool relevance not recomputed: %s", exc)
        return None


def _pool_samples(given: Any, store: Any) -> list[Any] | None:
    if given is None:
        return None
    from mona.data import load_samples

    if isinstance(given, (str, Path)):
        if not Path(given).exists():
            log.warning("pool samples %s not found; the domain/source mix is computed on the selection only", given)
            return None
        given = load_samples(given)
    samples = list(given)
    if store is not None:
        check_samples(store, samples)
    return samples
