"""The selection stage's one configuration: which method, how many samples, and the method's knobs."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal, get_args

from mona.errors import MonaError

Method = Literal[
    "mona",
    "nait",
    "greedy-coverage",
    "simscale",
    "kcenter",
    "mmr",
    "random",
    "longest",
    "tfidf",
    "bm25",
    "dense",
    "sbert",
]
METHODS: tuple[str, ...] = get_args(Method)

#: Methods that score every pool sample against a target set (they need one).
TARGET_METHODS = frozenset({"mona", "nait", "mmr", "tfidf", "bm25", "dense", "sbert"})
#: Methods that read SAE codes from the pool store and explain picks by SAE features.
SAE_METHODS = frozenset({"mona", "greedy-coverage", "simscale", "kcenter", "mmr"})
#: Methods that read only the sample files (no store needed).
TEXT_METHODS = frozenset({"random", "longest", "tfidf", "bm25", "sbert"})


@dataclass
class SelectConfig:
    """How to choose a subset of the pool. Saved as ``config`` inside ``selection.json``."""

    method: Method = "mona"
    """Selection method (see docs/select.md): target methods ``mona``, ``nait``, ``mmr``, ``tfidf``, ``bm25``,
    ``dense``, ``sbert``; diversity methods ``greedy-coverage``, ``simscale``, ``kcenter``; ``random``, ``longest``."""
    n: int | None = None
    """Number of samples to select. Exactly one of ``n`` and ``ratio`` is set (``ratio=0.05`` when neither)."""
    ratio: float | None = None
    """Fraction of the pool to select, in (0, 1]; rounded to the nearest count, at least 1."""
    seed: int = 0
    """Seed for every random choice (``random``, k-center's first centre, ``simscale`` with random order)."""

    similarity: Literal["jaccard", "cosine", "decoder"] = "jaccard"
    """Similarity of SAE codes (``mona``, ``mmr``): weighted Jaccard Σmin/Σmax (needs codes >= 0), cosine, or
    ``decoder``: cosine after mapping the (weighted) codes back through the SAE's decoder into the model's
    residual space, centred and standardised over the pool. Plain cosine treats every pair of features as
    unrelated; through the decoder, features with similar directions (a feature split in two, near-duplicates)
    still match. Needs the SAE (named in the store's manifest)."""
    aggregate: Literal["prototype", "max"] = "prototype"
    """How a target set is summarised: similarity to the mean target embedding (``prototype``; for binary codes
    this is the target set's feature-frequency profile) or the maximum similarity over the target samples
    (``max``; costs one pass over the pool per target sample). Used by mona, mmr, tfidf, bm25, dense, sbert."""
    binarize: bool = False
    """Treat SAE codes above ``active_threshold`` as 1 before scoring (``mona``/``mmr``). A mean-pooled store
    then behaves exactly like a ``binary`` pooled one (a feature counts once if it fires anywhere)."""
    active_threshold: float = 0.0
    """A feature is active in a sample when its pooled code is strictly above this (coverage, simscale,
    ``binarize``)."""
    feature_weights: Literal["none", "idf"] = "none"
    """``mona`` (and ``mmr``'s relevance): multiply each SAE feature, in pool and target codes alike, by a weight
    before scoring. ``idf``: ``ln((1 + n) / (1 + df)) + 1`` with ``df`` the pool samples where it is active, so
    features that fire everywhere (formatting, common tokens) count less than topical ones."""
    contrast: bool = False
    """``mona`` with ``similarity="cosine"``: score against the target prototype minus the pool's mean code (after
    ``feature_weights``), i.e. against what sets the target apart from the pool, not what every sample shares.
    Pool codes stay sparse (``x·(t − μ) / (‖x‖ ‖t − μ‖)``)."""
    max_feature_share: float = 1.0
    """``mona`` (and ``mmr``'s relevance): ignore features active in more than this share of the pool's samples.
    Such features describe the pool's common format rather than any topic; 1.0 keeps all."""
    targets: Literal["merge", "quota"] = "merge"
    """Several target sets: ``merge`` pools all target samples into one set; ``quota`` scores against each set
    separately and fills per-set quotas round-robin (each set's next best sample not yet taken)."""
    quotas: tuple[float, ...] | None = None
    """Relative quota per target set when ``targets="quota"`` (default: equal shares)."""
    top_features: int = 10
    """How many contributing SAE features to record per selected sample (0 disables)."""

    center: bool = True
    """``dense``/``kcenter``/``mmr`` on dense stores: subtract the pool's mean vector before cosine (one constant
    direction dominates raw residuals)."""
    standardize: bool = True
    """``dense``/``kcenter``/``mmr`` on dense stores: divide each dimension by its standard deviation over the
    pool before cosine. A few residual dimensions of Gemma-style models have a hundred times the spread of the
    rest and otherwise decide every cosine; on the demo targets this raised dense precision from 0.30 to 0.56
    (science) and 0.16 to 0.51 (reasoning)."""

    nait_candidate: Literal["last", "drift"] = "last"
    """NAIT: project the candidate's last-token activation (the paper's A_l(y)) or its drift last − first."""
    nait_layers: tuple[int, ...] | None = None
    """NAIT: layers to sum over (default: all layers in the store)."""
    nait_center: bool = True
    """NAIT: centre the target drifts before taking their first principal component (standard PCA)."""

    coverage_algorithm: Literal["incremental", "lazy"] = "incremental"
    """``greedy-coverage``: exact incremental gains with an arg-max per pick, or lazy greedy over a heap of stale
    gains. Both give the same picks; see docs/select.md for when each is faster."""
    sim_threshold: float = 0.5
    """``simscale``: drop a sample whose Jaccard similarity of active-feature sets to a kept one exceeds this."""
    simscale_order: Literal["features", "random"] = "features"
    """``simscale``: visit samples by number of active features (most first) or in seeded random order."""
    mmr_lambda: float = 0.7
    """``mmr``: score = λ·relevance − (1 − λ)·max similarity to the already selected samples."""
    mmr_candidates: int | None = None
    """``mmr``: run the greedy loop on this many most relevant samples (default max(10·n, 1000))."""

    bm25_k1: float = 1.5
    """``bm25``: term-frequency saturation."""
    bm25_b: float = 0.75
    """``bm25``: length normalisation."""
    sbert_batch_size: int = 64
    """``sbert``: texts per forward pass."""
    sbert_max_tokens: int = 256
    """``sbert``: texts are truncated to this many tokens (the model was trained on 256)."""

    def __post_init__(self) -> None:
        if self.feature_weights not in ("none", "idf"):
            raise MonaError(f"feature_weights must be 'none' or 'idf', got {self.feature_weights!r}")
        if not 0.0 < float(self.max_feature_share) <= 1.0:
            raise MonaError(f"max_feature_share must be in (0, 1], got {self.max_feature_share!r}")
        if self.contrast and self.similarity != "cosine":
            raise MonaError("contrast=True needs similarity='cosine' (the contrasted prototype has negative entries)")
        if self.method not in METHODS:
            raise MonaError(f"unknown selection method {self.method!r}; valid methods: {', '.join(METHODS)}")
        if self.n is not None and self.ratio is not None:
            raise MonaError("give either n or ratio, not both")
        if self.n is None and self.ratio is None:
            self.ratio = 0.05
        if self.n is not None and (isinstance(self.n, bool) or int(self.n) != self.n or self.n < 1):
            raise MonaError(f"n must be a positive integer, got {self.n!r}")
        if self.ratio is not None and not 0.0 < float(self.ratio) <= 1.0:
            raise MonaError(f"ratio must be in (0, 1], got {self.ratio!r}")
        _choice("similarity", self.similarity, ("jaccard", "cosine", "decoder"))
        _choice("aggregate", self.aggregate, ("prototype", "max"))
        _choice("targets", self.targets, ("merge", "quota"))
        _choice("nait_candidate", self.nait_candidate, ("last", "drift"))
        _choice("simscale_order", self.simscale_order, ("features", "random"))
        _choice("coverage_algorithm", self.coverage_algorithm, ("incremental", "lazy"))
        if self.quotas is not None:
            self.quotas = tuple(float(q) for q in self.quotas)
            if not self.quotas or min(self.quotas) < 0 or sum(self.quotas) <= 0:
                raise MonaError(f"quotas must be non-negative with a positive sum, got {self.quotas}")
        if self.nait_layers is not None:
            self.nait_layers = tuple(int(x) for x in self.nait_layers)
        if not 0.0 <= self.mmr_lambda <= 1.0:
            raise MonaError(f"mmr_lambda must be in [0, 1], got {self.mmr_lambda}")
        if not 0.0 <= self.sim_threshold <= 1.0:
            raise MonaError(f"sim_threshold must be in [0, 1], got {self.sim_threshold}")
        if self.top_features < 0:
            raise MonaError(f"top_features must be >= 0, got {self.top_features}")
        if self.mmr_candidates is not None and self.mmr_candidates < 1:
            raise MonaError(f"mmr_candidates must be >= 1, got {self.mmr_candidates}")
        if self.bm25_k1 < 0 or not 0.0 <= self.bm25_b <= 1.0:
            raise MonaError(f"bm25 needs k1 >= 0 and b in [0, 1], got k1={self.bm25_k1}, b={self.bm25_b}")

    def budget(self, pool_size: int) -> int:
        """The number of samples to select from a pool of ``pool_size``; raises if it exceeds the pool."""
        if pool_size < 1:
            raise MonaError("the pool is empty")
        k = int(self.n) if self.n is not None else max(1, round(float(self.ratio) * pool_size))
        if k > pool_size:
            raise MonaError(f"budget n={k} is larger than the pool ({pool_size} samples)")
        return k

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("quotas", "nait_layers"):
            if d[key] is not None:
                d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SelectConfig:
        """Build from a dict (JSON/YAML); unknown keys are an error naming the valid ones."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise MonaError(f"unknown select config key(s) {unknown}; valid keys: {', '.join(sorted(names))}")
        data = dict(data)
        for key in ("quotas", "nait_layers"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return cls(**data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> SelectConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))


def _choice(name: str, value: Any, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise MonaError(f"{name} must be one of {', '.join(valid)}; got {value!r}")
