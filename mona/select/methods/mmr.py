"""``mmr`` — maximal marginal relevance: relevance to the target traded against redundancy with the picks so far.

Relevance is ``mona``'s score on SAE stores (same options) or the dense cosine on dense stores; redundancy is
measured in the same space (through the decoder under ``similarity="decoder"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from jaxtyping import Float
from tqdm.auto import tqdm

from mona.errors import MonaError
from mona.select.budget import top_n
from mona.select.inputs import store_mode
from mona.select.methods.base import Attribution, Context, Method, Picked
from mona.select.methods.dense import score_dense
from mona.select.methods.mona import CodeOptions, overlap_attribution, score_codes
from mona.select.similarity import cosine_to_vector, jaccard_to_vector


@dataclass
class MmrOptions(CodeOptions):
    """MMR's settings: the relevance settings of ``mona`` (SAE stores) or ``dense`` (dense stores), and λ."""

    center: bool = True
    """Dense stores: subtract the pool's mean vector before cosine."""
    standardize: bool = True
    """Dense stores: divide each dimension by its standard deviation over the pool before cosine."""
    mmr_lambda: float = 0.7
    """Score = λ·relevance − (1 − λ)·max similarity to the already selected samples."""
    mmr_candidates: int | None = None
    """Run the greedy loop on this many most relevant samples (default max(10·n, 1000))."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.mmr_lambda <= 1.0:
            raise MonaError(f"mmr_lambda must be in [0, 1], got {self.mmr_lambda}")
        if self.mmr_candidates is not None and self.mmr_candidates < 1:
            raise MonaError(f"mmr_candidates must be >= 1, got {self.mmr_candidates}")


class Mmr(Method):
    name = "mmr"
    summary = "relevance to the target traded against redundancy with the picks so far"
    Options = MmrOptions
    target = "store"
    pool_modes = ("sae", "dense")
    merge_targets = True
    sae_features = True
    features = "overlap with the target, as for mona (relevance part of the score)"

    def _relevance(self, ctx: Context, group: list[Any]):
        pm = ctx.matrices()
        if store_mode(ctx.pool) == "sae":
            return score_codes(pm, group, 0, ctx.config.top_features, self.name)
        return score_dense(pm, group, 0, self.name, ("dense",))

    def pick(self, ctx: Context, groups: list[list[Any]]) -> Picked:
        o, pm = ctx.options, ctx.matrices()
        rel = self._relevance(ctx, groups[0])
        sae = store_mode(ctx.pool) == "sae"
        X, sim = (pm.codes(), o.similarity) if sae else (pm.dense(), "cosine")
        if sae and sim == "decoder":  # redundancy in the same space as the relevance
            X, sim = pm.decoded(), "cosine"
        p = mmr(X, rel.scores, ctx.n, o.mmr_lambda, sim, o.mmr_candidates)
        p.features, _ = rel.explain(p.rows)
        return p

    def relevance(self, ctx: Context, groups: list[list[Any]]) -> np.ndarray | None:
        return self._relevance(ctx, groups[0]).scores if groups else None

    def attribute(self, a: Attribution) -> list[dict[str, Any]]:
        return overlap_attribution(a, check_scores=False)


def mmr(
    X: Any,
    relevance: Float[np.ndarray, " n"],
    n: int,
    lam: float = 0.7,
    similarity: str = "jaccard",
    candidates: int | None = None,
) -> Picked:
    """Maximal marginal relevance over the ``candidates`` most relevant rows; ties → lower row.

    Score = the MMR objective λ·rel − (1 − λ)·max_sim at the time of the pick.
    """
    N = X.shape[0]
    C = min(N, candidates or max(10 * n, 1000))
    if C < n:
        raise MonaError(f"mmr_candidates={C} is smaller than the budget n={n}")
    cand = np.sort(top_n(relevance, C))  # ascending row order so argmax ties go to the lower row
    Xc = X[cand]
    if sp.issparse(Xc):
        Xc = sp.csr_matrix(Xc)
    rel = np.asarray(relevance, np.float64)[cand]
    maxsim = np.zeros(C)
    free = np.ones(C, bool)
    rows: list[int] = []
    scores: list[float] = []
    for _ in tqdm(range(n), desc="mmr", disable=n < 200, leave=False):
        obj = np.where(free, lam * rel - (1 - lam) * maxsim, -np.inf)
        i = int(np.argmax(obj))
        rows.append(int(cand[i]))
        scores.append(float(obj[i]))
        free[i] = False
        v = Xc[i].toarray().ravel() if sp.issparse(Xc) else np.asarray(Xc[i])
        if similarity == "jaccard":
            s = jaccard_to_vector(Xc, v)
        else:
            s = cosine_to_vector(Xc, v)
        np.maximum(maxsim, s, out=maxsim)
    return Picked(np.asarray(rows, np.int64), np.asarray(scores), info={"candidates": int(C)})


