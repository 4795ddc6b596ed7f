"""Explaining a selection: which SAE features drive each pick, and how the selection differs from the pool.

* :mod:`mona.explain.stage` — :func:`explain`, reading only artifacts (selection folder, stores); the per-pick
  attribution is the selection method's own (for ``mona`` each feature's term of the score: shares sum to 1
  and ``share · score`` is its contribution; under ``similarity="decoder"`` the contributions sum to the score
  minus ``offset``, the pool mean's part; for ``greedy-coverage`` the features the pick newly covered; otherwise
  the sample's own strongest features).
* :mod:`mona.explain.stats` — enrichment (hypergeometric test, BH-corrected, log odds), coverage, label mix.
* :mod:`mona.explain.pool` — the per-pool-sample table.
* :mod:`mona.explain.artifacts` — :class:`ExplainConfig`, :class:`Explanation`, the files and their loading.
"""

from mona.explain.artifacts import EXPLAIN_JSON, ExplainConfig, Explanation, load_explanation
from mona.explain.stage import explain
from mona.explain.stats import active_counts, coverage, enrichment
from mona.select.methods.mona import overlap_terms

__all__ = [
    "EXPLAIN_JSON",
    "ExplainConfig",
    "Explanation",
    "active_counts",
    "coverage",
    "enrichment",
    "explain",
    "load_explanation",
    "overlap_terms",
]
