"""What a selection method is: what it reads, its own options, how it picks, and what its features mean.

A method is a :class:`Method` subclass in one module of this package, registered in
``mona/select/methods/__init__.py``. ``select()``, ``explain`` and ``report`` ask the method object; none of them
branches on a method's name. Target methods score every pool row against each target set
(:class:`TargetMethod`: implement :meth:`TargetMethod.score`); the others pick directly (:meth:`Method.pick`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp

from mona.errors import MonaError
from mona.select.budget import round_robin, top_n
from mona.select.inputs import require_mode, store_mode
from mona.select.matrices import PoolMatrices

Explain = Callable[[np.ndarray], tuple[list[list[dict]] | None, list[str | None] | None]]

OWN_FEATURES = "the sample's own strongest features: share = pooled value / sum of the sample's pooled values"


def _no_explain(rows: np.ndarray) -> tuple[None, None]:
    return None, None


@dataclass
class NoOptions:
    """This method has no options of its own."""


@dataclass
class Scored:
    """Scores of every pool row against one target set, and how to explain chosen rows without rescoring."""

    scores: np.ndarray
    explain: Explain = _no_explain
    """rows -> (per-row contributing features or None, per-row best-matching target id or None)."""
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Picked:
    """Rows in pick order, a score per pick, and what the method knows about each pick."""

    rows: np.ndarray
    scores: np.ndarray
    features: list[list[dict]] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    targets: list[int] | None = None
    """Per pick, the target set it was chosen for (several sets with ``targets="quota"``)."""
    matches: list[str | None] | None = None
    """Per pick, the id of the most similar target sample (``aggregate="max"``)."""


@dataclass
class Context:
    """What ``select()`` hands a method: the pool (store and/or samples), the config, the budget."""

    pool: Any
    pool_samples: list[Any] | None
    config: Any
    n: int
    sae: Any = None
    _matrices: PoolMatrices | None = None
    boost: np.ndarray | None = None
    """(F,) multipliers of the features named in ``boost_features`` (steering), or None."""
    cache: dict[str, Any] = field(default_factory=dict)
    """Per-selection state a method computes once for all target sets (a fitted vocabulary, ...)."""

    @property
    def options(self) -> Any:
        return self.config.options

    @property
    def size(self) -> int:
        return len(self.pool.ids) if self.pool is not None else len(self.pool_samples)

    def matrices(self) -> PoolMatrices:
        """The pool store's representations under this method's options (computed once)."""
        if self._matrices is None:
            self._matrices = PoolMatrices(self.pool, self.config.options, sae=self.sae, boost=self.boost)
        return self._matrices


@dataclass
class Attribution:
    """What explaining a selection's picks can read: the selection, the SAE codes of the pool (when there is an
    SAE store of it), the pool's matrices under the selection's own options, and the target sets."""

    selection: Any
    codes: sp.csr_matrix | None
    matrices: PoolMatrices | None
    groups: list[list[Any]]
    top_features: int
    threshold: float


class Method:
    """A selection method. Subclasses set the class attributes and implement :meth:`pick` (or, for target
    methods, :meth:`TargetMethod.score`)."""

    name: ClassVar[str]
    """The name users give (``--method``)."""
    summary: ClassVar[str] = ""
    """One line: what the method does (CLI help, docs table)."""
    Options: ClassVar[type] = NoOptions
    """The method's own options dataclass (field docstrings become CLI help)."""
    target: ClassVar[Literal["store", "samples"] | None] = None
    """What target it needs: target stores, target samples (texts), or none."""
    pool_modes: ClassVar[tuple[str, ...] | None] = ()
    """Store modes of the pool it reads (a store is then required); ``()`` reads no store (samples only);
    ``None`` reads any pool store, or the samples when there is none."""
    needs_samples: ClassVar[bool] = False
    """Whether it reads the pool's samples (texts)."""
    merge_targets: ClassVar[bool] = False
    """Always merge several target sets into one (the method has no per-set quota)."""
    sae_features: ClassVar[bool] = False
    """Whether its picks are explained by SAE features of the pool store it reads (recorded in the selection)."""
    features: ClassVar[str | None] = None
    """What ``features[i]["share"]`` means for this method (written to selection.json); ``None`` = no features."""
    scores_are_relevance: ClassVar[bool] = False
    """Whether a pick's score is its relevance to the target (as explain's pool table recomputes it)."""

    def make_options(self, given: Any) -> Any:
        """The method's options from an instance, a dict of its fields, or ``None`` (defaults)."""
        if given is None:
            return self.Options()
        if isinstance(given, self.Options):
            return given
        if dataclasses.is_dataclass(given):
            given = dataclasses.asdict(given)
        if not isinstance(given, dict):
            raise MonaError(f"options of method {self.name!r} must be {self.Options.__name__} or a dict")
        names = {f.name for f in dataclasses.fields(self.Options)}
        unknown = sorted(set(given) - names)
        if unknown:
            listed = ", ".join(sorted(names)) or "none"
            raise MonaError(f"method {self.name!r} has no option(s) {unknown}; its options: {listed}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in given.items()}
        return self.Options(**values)

    def check_pool(self, pool: Any, pool_samples: list[Any] | None) -> None:
        """Raise a one-line error when the pool lacks what the method reads."""
        if self.pool_modes:
            if pool is None:
                raise MonaError(f"method {self.name!r} needs a pool store (mode {' or '.join(self.pool_modes)})")
            require_mode(pool, self.pool_modes, self.name)
        if self.needs_samples and not pool_samples:
            raise MonaError(f"method {self.name!r} needs the pool's samples (the texts), none were given")
        if pool is None and not pool_samples:
            raise MonaError("no pool: give a pool store or pool samples")

    def pick(self, ctx: Context, groups: list[list[Any]]) -> Picked:
        raise NotImplementedError

    def relevance(self, ctx: Context, groups: list[list[Any]]) -> np.ndarray | None:
        """Every pool row's relevance to the targets (explain's pool table), or ``None`` when undefined."""
        return None

    def feature_semantics(self, selection: Any, have_codes: bool) -> str | None:
        """What the explanation's per-pick ``share`` means."""
        return self.features if self.sae_features or not have_codes else OWN_FEATURES

    def attribute(self, a: Attribution) -> list[dict[str, Any]]:
        """Per pick, the features behind it (``explain``): by default the sample's own strongest features, or
        the features the selection recorded when no SAE codes of the pool are available."""
        return [own_features_entry(a, i) for i in range(len(a.selection))]


class TargetMethod(Method):
    """A method that scores every pool row against each target set and takes the best (per-set quotas when
    there are several sets and ``targets="quota"``)."""

    target: ClassVar[Literal["store", "samples"] | None] = "store"
    scores_are_relevance: ClassVar[bool] = True

    def score(self, ctx: Context, group: list[Any], k: int) -> Scored:
        raise NotImplementedError

    def pick(self, ctx: Context, groups: list[list[Any]]) -> Picked:
        scored = [self.score(ctx, g, k) for k, g in enumerate(groups)]
        quotas = list(ctx.config.quotas) if ctx.config.quotas else None
        if len(scored) == 1:
            rows, owner = top_n(scored[0].scores, ctx.n), None
        else:
            rows, owner = round_robin([s.scores for s in scored], ctx.n, quotas)
        own = owner if owner is not None else np.zeros(len(rows), np.int64)
        scores = np.array([scored[o].scores[r] for r, o in zip(rows, own, strict=False)], dtype=np.float64)
        features, matches = _explain_rows(scored, rows, own)
        info = {f"target_{k}": s.info for k, s in enumerate(scored) if s.info}
        return Picked(rows, scores, features if self.sae_features else None,
                      {"method_info": info} if info else {}, owner.tolist() if owner is not None else None, matches)

    def relevance(self, ctx: Context, groups: list[list[Any]]) -> np.ndarray | None:
        return np.max([self.score(ctx, g, k).scores for k, g in enumerate(groups)], axis=0) if groups else None


def _explain_rows(scored: list[Scored], rows: np.ndarray, owner: np.ndarray):
    features: list[Any] = [None] * len(rows)
    matches: list[Any] = [None] * len(rows)
    any_f = any_m = False
    for k, s in enumerate(scored):
        pos = np.flatnonzero(owner == k)
        if not len(pos):
            continue
        f, m = s.explain(rows[pos])
        for j, p in enumerate(pos):
            if f is not None:
                features[p], any_f = f[j], True
            if m is not None:
                matches[p], any_m = m[j], True
    return (features if any_f else None), (matches if any_m else None)


def target_ids(group: list[Any]) -> list[str]:
    """The ids of a target set's samples, in order (stores' rows, or samples)."""
    return [str(i) for s in group for i in s.ids] if group and hasattr(group[0], "ids") else [
        str(getattr(s, "id", i)) for i, s in enumerate(group)
    ]


def require_group(group: list[Any], k: int, modes: tuple[str, ...], method: str, pool: Any) -> None:
    """A target set of stores: non-empty, each of a mode the method reads and compatible with the pool."""
    from mona.select.inputs import check_compatible

    for s in group:
        require_mode(s, modes, method, "target")
        check_compatible(pool, s)
    if sum(len(s.ids) for s in group) == 0:
        raise MonaError(f"target set {k} is empty")


def own_features(X: sp.csr_matrix, rows: np.ndarray, k: int) -> list[list[dict]]:
    """Each row's top-``k`` features by pooled value (share of the row's total), as
    :func:`mona.select.similarity.activation_shares` gives them, for all rows in one sort."""
    sub = sp.csr_matrix(X[np.asarray(rows, np.int64)])
    n = sub.shape[0]
    out: list[list[dict]] = [[] for _ in range(n)]
    if k <= 0 or sub.nnz == 0:
        return out
    counts = np.diff(sub.indptr)
    row = np.repeat(np.arange(n), counts)
    vals = sub.data.astype(np.float64)
    totals = np.bincount(row, np.abs(vals), minlength=n)
    order = np.lexsort((sub.indices, -vals, row))  # by row, then value (largest first), then feature id
    rank = np.arange(len(order)) - sub.indptr[row[order]]
    top = order[(rank < k) & (vals[order] != 0) & (totals[row[order]] > 0)]
    for r, f, v in zip(row[top].tolist(), sub.indices[top].tolist(),
                       (np.abs(vals[top]) / totals[row[top]]).tolist(), strict=True):
        out[r].append({"feature": f, "share": v})
    return out


def pick_entry(a: Attribution, i: int) -> dict[str, Any]:
    """The fields every explained pick has: id, rank, row, score, and target/match when recorded."""
    sel = a.selection
    entry: dict[str, Any] = {"id": sel.ids[i], "rank": i, "row": int(sel.rows[i]), "score": float(sel.scores[i])}
    if sel.targets is not None:
        entry["target"] = int(sel.targets[i])
    if sel.matches is not None:
        entry["match"] = sel.matches[i]
    return entry


def recorded_features(a: Attribution, i: int) -> list[dict[str, Any]]:
    """The features the selection recorded for pick ``i`` (at most ``top_features``)."""
    feats = (a.selection.features or [[]] * len(a.selection))[i] or []
    return [dict(f) for f in list(feats)[: a.top_features]]


def row_codes(X: sp.csr_matrix, row: int) -> tuple[np.ndarray, np.ndarray]:
    """(feature ids, values) of one CSR row."""
    lo, hi = X.indptr[row], X.indptr[row + 1]
    return X.indices[lo:hi], X.data[lo:hi]


def finish(entry: dict[str, Any], features: list[dict[str, Any]]) -> dict[str, Any]:
    entry["features"] = features
    entry["listed_share"] = float(sum(f["share"] for f in features))
    return entry


def own_features_entry(a: Attribution, i: int) -> dict[str, Any]:
    """Pick ``i`` explained by its own strongest SAE features (or the recorded ones without codes)."""
    entry = pick_entry(a, i)
    if a.codes is None:
        return finish(entry, recorded_features(a, i))
    idx, val = row_codes(a.codes, entry["row"])
    entry["n_active"] = int((val > a.threshold).sum())
    total = float(np.abs(val).sum(dtype=np.float64))
    order = np.lexsort((idx, -val))[: a.top_features]
    feats = [{"feature": int(idx[j]), "share": float(abs(val[j]) / total), "value": float(val[j])}
             for j in order if val[j] != 0]
    return finish(entry, feats)


def store_is(store: Any, mode: str) -> bool:
    return store is not None and store_mode(store) == mode
