"""The selection stage's configuration: the settings every method shares, plus the chosen method's own options.

``SelectConfig`` holds what applies to every method (which method, the budget, the seed, how several target
sets share it, how many features to record). Each method declares its own options dataclass in its module
(``mona.select.methods.<name>``); ``SelectConfig.options`` holds an instance of it. Flat keyword arguments are
routed to the right place by :meth:`SelectConfig.build`::

    SelectConfig.build(method="mona", n=100, similarity="cosine")   # options=MonaOptions(similarity="cosine")
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

from mona.errors import MonaError

COMMON_FIELDS = (
    "method", "n", "ratio", "seed", "targets", "quotas", "top_features",
    "exclude_features", "require_features", "boost_features", "target_features", "steer_threshold",
    "index", "dedup",
)


@dataclass
class SelectConfig:
    """How to choose a subset of the pool. Saved as ``config`` inside ``selection.json``."""

    method: str = "mona"
    """Selection method: one of ``mona.select.METHODS`` (``mona select --help`` lists them with what they need)."""
    n: int | None = None
    """Number of samples to select. Exactly one of ``n`` and ``ratio`` is set (``ratio=0.05`` when neither)."""
    ratio: float | None = None
    """Fraction of the pool to select, in (0, 1]; rounded to the nearest count, at least 1."""
    seed: int = 0
    """Seed for every random choice (``random``, k-center's first centre, ``simscale`` with random order)."""
    targets: Literal["merge", "quota"] = "merge"
    """Several target sets: ``merge`` pools all target samples into one set; ``quota`` scores against each set
    separately and fills per-set quotas round-robin (each set's next best sample not yet taken)."""
    quotas: tuple[float, ...] | None = None
    """Relative quota per target set when ``targets="quota"`` (default: equal shares)."""
    top_features: int = 10
    """How many contributing SAE features to record per selected sample (0 disables)."""
    exclude_features: tuple[int | str, ...] | None = None
    """Methods on SAE codes: drop pool samples in which any of these features is active (pooled code above
    ``steer_threshold``) before selecting. Feature ids, or ``@FILE`` for the features of a saved search."""
    require_features: tuple[int | str, ...] | None = None
    """Methods on SAE codes: keep only pool samples in which every one of these features is active."""
    boost_features: tuple[str, ...] | None = None
    """Methods comparing SAE codes (``mona``, ``mmr``, ``kcenter``): multiply these features by a weight before
    scoring, as ``ID=WEIGHT`` (e.g. ``1234=3``; a weight of 0 ignores the feature)."""
    target_features: tuple[str, ...] | None = None
    """Target methods on SAE codes: a target given as features instead of samples, ``ID`` or ``ID=WEIGHT``."""
    steer_threshold: float = 0.0
    """A feature counts as active for ``exclude_features``/``require_features`` when its pooled code is above
    this."""
    index: Literal["auto", "exact", "ivf", "none"] = "auto"
    """How neighbour queries run (``aggregate="max"``, kcenter, simscale, mmr, ``dedup``): ``exact`` (a flat FAISS
    index, or sparse products for wide codes), ``ivf`` (the store's compressed index, exact re-ranking), ``none``
    (brute force); ``auto``: exact up to 20,000 rows or while the vectors fit a flat index, else ivf."""
    dedup: float | None = None
    """Before selecting, drop every sample whose cosine similarity to an earlier (lower-row) kept sample is at
    least this (near-duplicate removal; the first of each group stays). ``None`` keeps all."""
    options: Any = None
    """The method's own options (its ``Options`` dataclass, or a dict of its fields); ``None`` = its defaults."""

    def __post_init__(self) -> None:
        from mona.select.methods import get_method

        method = get_method(self.method)  # raises on an unknown name, listing the valid ones
        if self.n is not None and self.ratio is not None:
            raise MonaError("give either n or ratio, not both")
        if self.n is None and self.ratio is None:
            self.ratio = 0.05
        if self.n is not None and (isinstance(self.n, bool) or int(self.n) != self.n or self.n < 1):
            raise MonaError(f"n must be a positive integer, got {self.n!r}")
        if self.ratio is not None and not 0.0 < float(self.ratio) <= 1.0:
            raise MonaError(f"ratio must be in (0, 1], got {self.ratio!r}")
        if self.targets not in ("merge", "quota"):
            raise MonaError(f"targets must be one of merge, quota; got {self.targets!r}")
        if self.quotas is not None:
            self.quotas = tuple(float(q) for q in self.quotas)
            if not self.quotas or min(self.quotas) < 0 or sum(self.quotas) <= 0:
                raise MonaError(f"quotas must be non-negative with a positive sum, got {self.quotas}")
        if self.index not in ("auto", "exact", "ivf", "none"):
            raise MonaError(f"index must be one of auto, exact, ivf, none; got {self.index!r}")
        if self.dedup is not None and not 0.0 < float(self.dedup) <= 1.0:
            raise MonaError(f"dedup must be a cosine threshold in (0, 1], got {self.dedup!r}")
        if self.top_features < 0:
            raise MonaError(f"top_features must be >= 0, got {self.top_features}")
        from mona.select.steer import normalise_ids, normalise_spec

        self.exclude_features = normalise_ids(self.exclude_features, "exclude_features")
        self.require_features = normalise_ids(self.require_features, "require_features")
        self.boost_features = normalise_spec(self.boost_features, "boost_features")
        self.target_features = normalise_spec(self.target_features, "target_features")
        self.options = method.make_options(self.options)

    def budget(self, pool_size: int) -> int:
        """The number of samples to select from a pool of ``pool_size``; raises if it exceeds the pool."""
        if pool_size < 1:
            raise MonaError("the pool is empty")
        k = int(self.n) if self.n is not None else max(1, round(float(self.ratio) * pool_size))
        if k > pool_size:
            raise MonaError(f"budget n={k} is larger than the pool ({pool_size} samples)")
        return k

    def option(self, name: str, default: Any = None) -> Any:
        """One of the method's options, or ``default`` when the method has no such option."""
        return getattr(self.options, name, default)

    def to_dict(self) -> dict[str, Any]:
        d = {name: getattr(self, name) for name in COMMON_FIELDS}
        d = {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
        d["options"] = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.options).items()}
        return d

    @classmethod
    def build(cls, strict: bool = True, **values: Any) -> SelectConfig:
        """A config from flat keyword values: shared fields by name, the rest as the method's options.

        ``strict=False`` drops options the method does not have (reading configs saved with other settings)."""
        from mona.select.methods import get_method

        method = get_method(values.get("method", "mona"))
        names = {f.name for f in fields(method.Options)}
        given = values.pop("options", None)
        options = asdict(given) if dataclasses.is_dataclass(given) else dict(given or {})
        common: dict[str, Any] = {}
        for key, value in values.items():
            if key in COMMON_FIELDS:
                common[key] = value
            elif key in names:
                options[key] = value
            elif strict:
                raise MonaError(_unknown(key, method))
        return cls(**common, options=options)

    @classmethod
    def from_dict(cls, data: dict[str, Any], strict: bool = True) -> SelectConfig:
        """Build from a dict (JSON/YAML), nested (``options``) or flat; unknown keys are an error naming the
        valid ones (``strict=False``: options that do not apply to the method are dropped)."""
        data = dict(data)
        for key in ("quotas", "exclude_features", "require_features", "boost_features", "target_features"):
            if isinstance(data.get(key), list):
                data[key] = tuple(data[key])
        return cls.build(strict=strict, **data)

    def replace(self, **values: Any) -> SelectConfig:
        """A copy with some shared fields or options changed (flat names, as :meth:`build` takes them)."""
        method = values.get("method", self.method)
        keep = {k: v for k, v in self.to_dict().items() if k != "options"}
        options = self.to_dict()["options"] if method == self.method else {}
        return SelectConfig.build(**{**keep, "options": options, **values})

    def save(self, path: str | Path) -> None:
        from mona.io import atomic_write_json

        atomic_write_json(Path(path), self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> SelectConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))


def _unknown(key: str, method: Any) -> str:
    names = [f.name for f in fields(method.Options)]
    listed = ", ".join(names) if names else "none"
    return (
        f"unknown select setting {key!r} for method {method.name!r}; shared settings: {', '.join(COMMON_FIELDS)}; "
        f"{method.name}'s options: {listed}"
    )
