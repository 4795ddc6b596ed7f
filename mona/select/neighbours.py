"""Neighbour queries for selection, served by the store's FAISS index (:mod:`mona.index`) or by brute force.

One small interface between the selection methods and the index:

* :func:`pool_space` / :func:`code_space` / :func:`dense_space` — the vectors a method compares (normalised SAE
  codes, weighted or binarised as its options say; the decoder space; dense or sentence vectors), with the key
  that identifies their index beside the store.
* :func:`resolve` — which path a query takes: ``exact`` (FAISS ``IndexFlatIP``, or the sparse brute force where
  densifying wide codes would cost more), ``ivf`` (compressed index, exact re-ranking) or ``none`` (the method's
  own brute-force pass). ``auto``: exact while the pool has at most :data:`EXACT_MAX_ROWS` rows or its vectors
  fit a flat index (``IndexConfig.flat_max_bytes``), else ivf.
* :func:`best_targets` (``aggregate="max"``), :func:`near_pairs` (near-duplicates, SimScale candidates) and
  :func:`kcenter_ivf` (farthest-point updates over inverted lists).

Every query records in ``info`` which path ran, the index kind and its measured recall (``selection.json``
``info["index"]``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from mona.errors import MonaError
from mona.index import HOLD_MAX_BYTES, Index, IndexConfig, index_for
from mona.io import json_hash
from mona.select.inputs import binarize_codes
from mona.select.matrices import reweight
from mona.vectors import Vectors, normalize_rows

log = logging.getLogger(__name__)

IndexMode = Literal["auto", "exact", "ivf", "none"]
EXACT_MAX_ROWS = 20_000
"""``index="auto"`` stays exact up to this many pool rows whatever their width."""
EXACT_MAX_PAIRS = 20_000_000_000
"""``index="auto"`` answers a fixed set of queries exactly up to this many (pool row, query) pairs: one blocked
sparse product pass over the pool's shards is exact and, on 2 cores, took 43 s for 1M rows x 1,000 targets and
488 s for 10M x 1,000, where building an index over the weighted 10M codes and searching it took 1,086 s at 28%
recall (BENCHMARKS.md)."""


@dataclass
class Space:
    """Row vectors a method compares by cosine, and the key of their index beside the store."""

    vectors: Vectors
    key: dict[str, Any]
    store: Any = None
    """The ``mona.store.Store`` the index is saved beside (``None`` for in-memory pools: built, not saved)."""

    @property
    def n(self) -> int:
        return self.vectors.n

    @property
    def width(self) -> int:
        return self.vectors.width


def _disk_store(store: Any) -> Any:
    from mona.store import Store

    return store if isinstance(store, Store) else None


def code_space(pm: Any, weighted: bool = True) -> Space:
    """The pool's SAE codes as ``pm`` compares them: binarised (``binarize``) and, when ``weighted``, multiplied
    by the feature weights; streamed from a store's shards, or the in-memory matrix."""
    cfg = pm.config
    w = pm.feature_weights() if weighted else None
    key: dict[str, Any] = {"vectors": "codes"}
    if cfg.binarize:
        key.update(binarize=True, active_threshold=float(cfg.active_threshold))
    if w is not None:
        key.update(weights=cfg.feature_weights, max_feature_share=float(cfg.max_feature_share))
        if pm.boost is not None:
            key["boost"] = json_hash(np.asarray(pm.boost, np.float64).tolist())

    def transform(x: Any) -> Any:
        x = binarize_codes(x, cfg.active_threshold) if cfg.binarize else x
        return reweight(x, w) if w is not None else x

    store = _disk_store(pm.store)
    plain = not cfg.binarize and w is None
    if store is not None and pm._codes is None:
        return Space(Vectors(store, None if plain else transform), key, store)
    X = pm.weighted_codes() if weighted else pm.codes()
    return Space(Vectors(X), key, store)


def binary_space(pm: Any, threshold: float) -> Space:
    """The pool's active-feature sets (codes above ``threshold`` as 1), as SimScale compares them."""
    key = {"vectors": "codes", "binarize": True, "active_threshold": float(threshold)}
    store = _disk_store(pm.store)
    if store is not None and pm._codes is None:
        return Space(Vectors(store, lambda x: binarize_codes(x, threshold)), key, store)
    return Space(Vectors(binarize_codes(pm.codes(), threshold)), key, store)


def dense_space(pm: Any, decoder: bool = False) -> Space:
    """The pool's dense vectors (centred/standardised per the options) or its decoded SAE codes."""
    cfg = pm.config
    if decoder:
        key = {"vectors": "decoder", "weights": cfg.feature_weights, "max_feature_share": float(cfg.max_feature_share),
               "binarize": bool(cfg.binarize), "sae": (pm.store.manifest.get("sae") or {}).get("weights_hash")
               if isinstance(getattr(pm.store, "manifest", None), dict) else None}
        if pm.boost is not None:
            key["boost"] = json_hash(np.asarray(pm.boost, np.float64).tolist())
        return Space(Vectors(pm.decoded()), key, _disk_store(pm.store))
    key = {"vectors": "dense", "center": bool(cfg.center), "standardize": bool(cfg.standardize)}
    return Space(Vectors(pm.dense()), key, _disk_store(pm.store))


def pool_space(pm: Any, sae: bool) -> Space:
    """The space diversity methods and near-duplicate removal compare: the (unweighted, optionally binarised) SAE
    codes of an ``sae`` store, or the dense vectors of a dense/sentence store."""
    return code_space(pm, weighted=False) if sae else dense_space(pm)


def pool_rows(store: Any) -> int:
    """Rows of a pool store (without reading a large store's ids)."""
    n = getattr(store, "n", None)
    return int(n) if isinstance(n, (int, np.integer)) else len(store.ids)


def resolve(mode: str, n: int, width: int, config: IndexConfig | None = None, queries: int | None = None) -> str:
    """The path a query takes: ``exact``, ``ivf`` or ``none``. With ``queries`` (a fixed set of query rows, e.g.
    the targets of ``aggregate="max"``), ``auto`` also stays exact while ``n * queries`` is at most
    :data:`EXACT_MAX_PAIRS`: one exact pass is then cheaper than building an index."""
    config = config or IndexConfig()
    if mode != "auto":
        return mode
    if queries is not None and n * queries <= EXACT_MAX_PAIRS:
        return "exact"
    return "exact" if n <= EXACT_MAX_ROWS or n * width * 4 <= config.flat_max_bytes else "ivf"


def open_index(space: Space, kind: str, config: IndexConfig | None = None, progress: bool = True) -> Index:
    """The index over ``space`` (``flat`` or ``ivf``), loaded from beside the store or built."""
    return index_for(space.store, space.vectors, space.key, config or IndexConfig(), kind, progress)


def index_info(index: Index, path: str, **extra: Any) -> dict[str, Any]:
    return {"path": path, **index.info, "space": index.space, **extra}


# --------------------------------------------------------------------------------------------------------
# aggregate="max": each pool row's best target
# --------------------------------------------------------------------------------------------------------


def best_targets(space: Space, targets: Any, n_select: int, path: str, config: IndexConfig | None = None,
                 progress: bool = True) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Each pool row's best cosine over the target rows, and which target: (scores, arg, info).

    ``exact``: a flat index over the (few) targets, searched by every pool block (k=1) — the same result as
    brute force. ``ivf``: each target's nearest pool rows from the pool's index, re-ranked exactly and merged;
    the per-target lists grow until every list's last score is below the ``n_select``-th best merged score, so
    the top ``n_select`` rows are those of brute force whenever the index finds each target's true neighbours.
    Rows no list reached get score ``-inf`` (they cannot be among the top ``n_select``)."""
    import faiss

    config = config or IndexConfig()
    T = normalize_rows(targets)
    m = T.shape[0]
    if path == "exact":
        flat = faiss.IndexFlatIP(space.width)
        flat.add(np.ascontiguousarray(T.toarray() if sp.issparse(T) else T, np.float32))
        scores = np.empty(space.n, np.float64)
        arg = np.empty(space.n, np.int64)
        for a, block in space.vectors.blocks():
            q = normalize_rows(block)
            s, j = flat.search(np.ascontiguousarray(q.toarray() if sp.issparse(q) else q, np.float32), 1)
            scores[a : a + len(s)], arg[a : a + len(s)] = s[:, 0], j[:, 0]
        return scores, arg, {"path": "exact", "kind": "flat", "over": "targets", "targets": m}
    index = open_index(space, "ivf", config, progress)
    k = np.full(m, max(10, math.ceil(2 * n_select / m)), np.int64)
    calibrated = calibrate_search(index, space, T, int(min(k.max(), 100, space.n)), config.recall_queries)
    lists: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    todo = np.arange(m)
    rounds = 0
    while len(todo):
        rounds += 1
        for kk in np.unique(k[todo]):
            sel = todo[k[todo] == kk]
            s, r = index.search(T[sel], int(kk))
            for j, q in enumerate(sel):
                lists[int(q)] = (s[j], r[j])
        scores, arg = _merge(lists, space.n)
        theta = np.partition(scores, space.n - n_select)[space.n - n_select] if n_select <= space.n else -np.inf
        todo = np.array([q for q in range(m) if k[q] < space.n and len(lists[q][0]) == k[q]
                         and lists[q][0][-1] >= theta], np.int64)
        k[todo] = np.minimum(k[todo] * 2, space.n)
    info = index_info(index, "ivf", over="pool", targets=m, rounds=rounds, k_max=int(k.max()),
                      reached=int(np.isfinite(scores).sum()), **calibrated)
    return scores, arg, info


def calibrate_search(index: Index, space: Space, queries: Any, k: int, count: int, target: float = 0.95) -> dict:
    """Tune the ivf index's search until ``count`` sampled queries find at least ``target`` of their exact top-``k``
    (one brute-force pass over the pool): ``nprobe`` doubles from its configured value while that raises recall,
    then the candidates re-ranked per query (``rerank``) double, up to 16x, while that does. Returns the recall
    reached, ``nprobe`` and ``rerank`` for ``info``; warns when the target is not reached. ``count`` 0: no
    calibration."""
    if not count:
        return {}
    pick = np.unique(np.linspace(0, queries.shape[0] - 1, min(count, queries.shape[0])).astype(np.int64))
    truth = exact_top(space, queries[pick], k)

    def recall_at(nprobe: int, rerank: int) -> float:
        index.config = replace(index.config, nprobe=nprobe, rerank=rerank)
        _, got = index.search(queries[pick], k)
        return float(np.mean([len(set(g[g >= 0]) & set(w)) / max(1, len(w)) for g, w in zip(got, truth, strict=True)]))

    out = tune_search(index, recall_at, target, f"the exact top-{k}")
    return {**out, "recall_queries": len(pick), "recall_k": k}


def tune_search(index: Index, recall_at: Any, target: float, of: str) -> dict:
    """Raise the ivf index's ``nprobe`` (doubling), then its ``rerank`` (doubling, up to 16x), each while
    ``recall_at(nprobe, rerank)`` gains at least 0.01, until it reaches ``target``; the index keeps the last
    setting. ``of`` names what the recall is measured against, for the warning."""
    nlist, rerank0 = int(index._ivf().nlist), int(index.config.rerank)
    nprobe, rerank = min(int(index.config.nprobe), nlist), rerank0
    recall = recall_at(nprobe, rerank)
    for lever in ("nprobe", "rerank"):
        while recall < target:
            more = (min(2 * nprobe, nlist), rerank) if lever == "nprobe" else (nprobe, 2 * rerank)
            if more == (nprobe, rerank) or more[1] > 16 * rerank0:
                break
            gained = recall_at(*more)
            if gained < recall + 0.01:  # this lever no longer helps (the projection limits recall)
                index.config = replace(index.config, nprobe=nprobe, rerank=rerank)
                break
            (nprobe, rerank), recall = more, gained
    if recall < target:
        log.warning("ivf search recall %.2f < %.2f of %s (nprobe %d, rerank %d); index='exact' streams an "
                    "exact pass over the pool instead", recall, target, of, nprobe, rerank)
    index.config = replace(index.config, nprobe=nprobe, rerank=rerank)
    return {"recall": round(recall, 4), "nprobe": nprobe, "rerank": rerank}


def exact_top(space: Space, queries: Any, k: int) -> np.ndarray:
    """(q, k) the rows of the exact top-``k`` cosine of each query (one pass over the space's blocks)."""
    Q = normalize_rows(queries)
    Qt = Q.T.toarray() if sp.issparse(Q) else np.ascontiguousarray(Q.T)
    best_s = np.full((Q.shape[0], 0), -np.inf)
    best_r = np.zeros((Q.shape[0], 0), np.int64)
    for a, block in space.vectors.blocks():
        S = np.asarray(normalize_rows(block) @ Qt, np.float64).T
        rows = np.broadcast_to(np.arange(a, a + S.shape[1]), S.shape)
        s, r = np.hstack([best_s, S]), np.hstack([best_r, rows])
        top = np.argsort(-s, axis=1, kind="stable")[:, :k]
        best_s, best_r = np.take_along_axis(s, top, 1), np.take_along_axis(r, top, 1)
    return best_r


def _merge(lists: dict[int, tuple[np.ndarray, np.ndarray]], n: int) -> tuple[np.ndarray, np.ndarray]:
    scores = np.full(n, -np.inf)
    arg = np.full(n, -1, np.int64)
    for q in sorted(lists):  # ascending target order: ties keep the first target, as brute force does
        s, r = lists[q]
        ok = r >= 0
        s, r = s[ok].astype(np.float64), r[ok]
        better = s > scores[r]
        scores[r[better]], arg[r[better]] = s[better], q
    return scores, arg


# --------------------------------------------------------------------------------------------------------
# Pairs above a cosine threshold (near-duplicates, SimScale)
# --------------------------------------------------------------------------------------------------------


def near_pairs(space: Space, threshold: float, path: str, rows: np.ndarray | None = None,
               config: IndexConfig | None = None, progress: bool = True,
               index: Index | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Pairs ``(i, j)``, ``i`` in ``rows`` (default all), ``j != i``, with cosine >= ``threshold``: (i, j, info).

    ``exact``: blocked products over all rows (sparse codes) or a flat index's range search (dense vectors);
    ``ivf``: the index's range search with exact verification of every candidate pair."""
    config = config or IndexConfig()
    if path == "exact" and space.vectors.sparse:
        i, j = _exact_sparse_pairs(space, threshold, rows, progress)
        return i, j, {"path": "exact", "kind": "sparse products"}
    index = index or open_index(space, "flat" if path == "exact" else "ivf", config, progress)
    i, j, _ = index.pairs(threshold, rows, progress)
    return i, j, index_info(index, path)


def _exact_sparse_pairs(space: Space, threshold: float, rows: np.ndarray | None,
                        progress: bool) -> tuple[np.ndarray, np.ndarray]:
    X = normalize_rows(space.vectors.all())
    Xt = X.T.tocsr()
    rows = np.arange(X.shape[0]) if rows is None else np.asarray(rows, np.int64)
    out_i, out_j = [], []
    for a in tqdm(range(0, len(rows), 1024), desc="pairs", disable=not progress or len(rows) < 20_000):
        r = rows[a : a + 1024]
        S = (X[r] @ Xt).tocoo()
        ok = (S.data >= threshold - 1e-6) & (r[S.row] != S.col)
        out_i.append(r[S.row[ok]])
        out_j.append(S.col[ok].astype(np.int64))
    if not out_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(out_i), np.concatenate(out_j)


# --------------------------------------------------------------------------------------------------------
# k-center over inverted lists
# --------------------------------------------------------------------------------------------------------


def kcenter_ivf(space: Space, n: int, seed: int = 0, config: IndexConfig | None = None,
                progress: bool = True, nprobe: int = 8, hold_bytes: int | None = None,
                ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Farthest-point greedy whose distance updates visit only the rows of the ``nprobe`` inverted lists nearest
    each new centre, after one exact pass for the first centre.

    The vectors are held once, reordered so that every inverted list is one contiguous slice: an update is a few
    slice products, and the farthest row is found from one running maximum per list. Rows outside the probed
    lists keep their distance to the nearest centre found so far (an upper bound), so picks follow
    farthest-point greedy approximately; the scores are the distances the greedy used. Distances are exact
    cosines on the vectors while they fit in ``hold_bytes`` (:data:`mona.index.HOLD_MAX_BYTES`); above that (10M
    pooled codes take ~16 GB) the index's sketch of every row is held instead, in bfloat16 (512 bytes a row),
    and distances are cosines of the sketches (``info["distances"]``)."""
    config = config or IndexConfig()
    index = open_index(space, "ivf", config, progress)
    owner = index.lists()
    n_lists = int(owner.max()) + 1
    order = np.argsort(owner, kind="stable")  # position p holds row order[p]; list l is positions bounds[l]..
    bounds = np.searchsorted(owner[order], np.arange(n_lists + 1))
    nprobe = min(nprobe, n_lists)
    hold_bytes = HOLD_MAX_BYTES if hold_bytes is None else hold_bytes
    exact = not (space.vectors.sparse and index.projection is not None) or space.vectors.nbytes() <= hold_bytes
    sizes = np.diff(bounds)
    tail = 0 if exact else shape_bucket(sizes.max())
    X, probes = _held_in_list_order(space, index, order, nprobe, exact, tail)
    first_row = int(np.random.default_rng(seed).integers(space.n))
    first = int(np.flatnonzero(order == first_row)[0])
    mind = _distances(X, X[first])[: space.n]
    mind[first] = -np.inf
    # sliced once, not per pick; sketches padded (into the zero tail) to a few shapes
    parts = [X[bounds[lst] : bounds[lst] + (shape_bucket(size) if tail else size)] for lst, size in enumerate(sizes)]
    list_max = np.full(n_lists, -np.inf)
    for lst in np.flatnonzero(np.diff(bounds)):
        list_max[lst] = mind[bounds[lst] : bounds[lst + 1]].max()
    rows, scores = [first_row], [1.0]
    for _ in tqdm(range(n - 1), desc="kcenter", disable=not progress or n < 200, leave=False):
        best = int(np.argmax(list_max))
        a = int(bounds[best])
        p = a + int(np.argmax(mind[a : bounds[best + 1]]))
        rows.append(int(order[p]))
        scores.append(float(mind[p]))
        v = parts[best][p - a]
        mind[p] = -np.inf
        for lst in {int(x) for x in probes[p] if x >= 0} | {best}:
            seg = mind[bounds[lst] : bounds[lst + 1]]
            if len(seg):
                np.minimum(seg, _distances(parts[lst], v)[: len(seg)], out=seg)
                list_max[lst] = seg.max()
    return np.asarray(rows, np.int64), np.asarray(scores), index_info(
        index, "ivf", nprobe=nprobe, distances="exact" if exact else "sketch")


def _held_in_list_order(space: Space, index: Index, order: np.ndarray, nprobe: int,
                        exact: bool, tail: int = 0) -> tuple[Any, np.ndarray]:
    """The rows at positions ``order`` (normalised CSR, or their sketches as a bfloat16 tensor followed by
    ``tail`` zero rows), and each position's ``nprobe`` nearest lists; streamed block by block."""
    import torch

    where = np.empty(space.n, np.int64)
    where[order] = np.arange(space.n)
    probes = np.empty((space.n, nprobe), np.int32)
    held = None if exact else torch.zeros((space.n + tail, index._ivf().d), dtype=torch.bfloat16)
    parts = []
    for a, block in space.vectors.blocks():
        block = normalize_rows(block)
        at = where[a : a + block.shape[0]]
        probes[at] = index.probe(block, nprobe)
        if exact:
            parts.append(block)
        else:
            held[torch.from_numpy(at)] = torch.from_numpy(index.prepare(block)).to(torch.bfloat16)
    if exact:
        X = sp.vstack(parts, format="csr") if space.vectors.sparse else np.concatenate(parts)
        parts.clear()
        return X[order], probes
    return held, probes


def shape_bucket(size: int) -> int:
    """``size`` rounded up to one of four steps per doubling (16, 20, 24, 28, 32, 40, ...): bfloat16 products on
    a CPU compile a kernel per shape (a new shape costs ~8x the product), so padded shapes come from this short
    list (at most 25% padding)."""
    size = max(int(size), 16)
    step = size.bit_length() - 3
    return -(-size >> step) << step


def _distances(X: Any, v: Any) -> np.ndarray:
    """1 − cosine of every row of ``X`` (CSR, array, or bfloat16 sketches) to the row ``v``."""
    import torch

    if isinstance(X, torch.Tensor):
        return 1.0 - (X @ v).double().numpy()
    v = v.toarray().ravel() if sp.issparse(v) else np.asarray(v).ravel()
    return 1.0 - np.asarray(X @ v, np.float64).ravel()


def check_k(k: int, n: int, what: str = "k") -> None:
    if k > n:
        raise MonaError(f"{what}={k} is larger than the pool ({n} samples)")
