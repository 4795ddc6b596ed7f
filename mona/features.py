"""Find SAE features by meaning, and look at one feature: text search over feature labels, pool statistics.

A feature's label (:mod:`mona.labels`) is its top-activating tokens in a corpus, each with its context.
:func:`search_features` ranks features by how well those contexts match a text query; it is deliberately simple,
so every score can be checked by eye:

* the query is lower-cased; its *words* are its runs of letters and digits;
* each of a feature's top contexts ``j`` (activation ``v_j``) gets a match value ``m_j``:
  ``1`` when the **activating token** itself matches (the query occurs in the token, the token is one of the
  query's words, or a token of 3+ characters begins one of them: ``frac`` for ``fraction``, not ``action``),
  else ``0.5 x`` how much of the query
  its **context** holds (``1`` when the whole query occurs in the context text, else the share of the query's
  words that are words of the context), else ``0``;
* ``score = sum_j v_j m_j / sum_j v_j`` (in [0, 1]): the activation-weighted share of the top contexts that
  match, a match on the activating token counting twice a match in its context;
* when a local explanation of the feature exists (a Neuronpedia export, see :func:`load_explanations`; nothing
  is fetched), ``score = max(score, e)`` with ``e`` = 1 if the query occurs in the explanation, else the share
  of the query's words in it;
* features with ``score > 0`` are ranked by score, then by the number of activating tokens that match, then by
  their top activation, then by id.

Each search reads every top context once (token matches are looked up per vocabulary entry, context matches
are substring and whole-word tests over the joined context texts), about a second for 8k features x 12 contexts.

A saved search (``save_search``) is JSON ``{"query": ..., "features": [{"feature": id, "score": ..., "label":
...}, ...], ...}``: what ``exclude_features=["@FILE"]`` and the other steering settings of
:class:`mona.select.SelectConfig` read.

:func:`feature_stats` counts, per feature, the samples of a store in which it is active and lists the samples
with the highest pooled value. :func:`find_labels` finds the cached labels of an SAE under ``MONA_HOME/labels``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from mona.errors import MonaError
from mona.io import atomic_write_json, mona_home

log = logging.getLogger(__name__)

SEARCH_FORMAT = 1
EXPLANATIONS_FILE = "explanations.json"
"""A label folder may hold local feature explanations under this name (see :func:`load_explanations`)."""
_WORD = re.compile(r"\w+")


@dataclass
class FeatureMatch:
    """One feature found by :func:`search_features`."""

    feature: int
    score: float
    """Activation-weighted share of the top contexts that match (see the module docstring), in [0, 1]."""
    label: str
    """The automatic label: top activating tokens."""
    token_matches: int
    """Top contexts whose activating token matches the query."""
    context_matches: int
    """Top contexts that match at all (token or context)."""
    contexts: int
    """Top contexts the feature has in the label corpus."""
    top_value: float
    """Its strongest activation in the label corpus."""
    explanation: str | None = None
    url: str | None = None
    """Its Neuronpedia page, for SAEs that have one."""

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


# --------------------------------------------------------------------------------------------------------
# Searching labels
# --------------------------------------------------------------------------------------------------------


@dataclass
class _Query:
    text: str
    words: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, query: str) -> _Query:
        text = " ".join(str(query).lower().split())
        if not text:
            raise MonaError("the feature search query is empty")
        return cls(text, set(_WORD.findall(text)))

    def token_hit(self, token: str) -> bool:
        t = token.lower().strip()
        if not t:
            return False
        return self.text in t or t in self.words or (len(t) >= 3 and any(w.startswith(t) for w in self.words))

    def overlap(self, text: str) -> float:
        """1 when the whole query occurs in ``text``, else the share of its words that are words of ``text``."""
        low = text.lower()
        if self.text in low:
            return 1.0
        if not self.words:
            return 0.0
        return len(self.words & set(_WORD.findall(low))) / len(self.words)



def search_features(
    query: str, labels: Any, *, top: int | None = 20, explanations: dict[int, str] | None = None,
    min_score: float = 0.0,
) -> list[FeatureMatch]:
    """Features whose labels match ``query``, best first (ranking in the module docstring).

    ``labels``: :class:`~mona.labels.FeatureLabels` or a label folder. ``explanations``: ``{feature: text}``
    (default: the label folder's ``explanations.json`` when it has one). ``top``: at most this many (None: all).
    """
    labels = _as_labels(labels)
    if explanations is None:
        explanations = load_explanations(labels.path) if labels.path is not None else {}
    q = _Query.of(query)
    valid = labels.sample >= 0  # (F, k)
    token, overlap = _context_matches(q, labels)
    m = np.where(token, 1.0, 0.5 * overlap) * valid
    v = np.where(valid, labels.values, 0.0).astype(np.float64)
    mass = v.sum(1)
    score = np.divide((v * m).sum(1), mass, out=np.zeros_like(mass), where=mass > 0)
    for f, text in explanations.items():
        if 0 <= f < labels.n_features:
            score[f] = max(score[f], q.overlap(text))
    n_token, n_match = (token & valid).sum(1), ((m > 0) & valid).sum(1)
    top_value = np.where(valid[:, 0], labels.values[:, 0], 0.0)
    hits = np.flatnonzero(score > min_score)
    order = hits[np.lexsort((hits, -top_value[hits], -n_token[hits], -score[hits]))]
    return [FeatureMatch(
        feature=int(f), score=float(score[f]), label=labels.label(int(f)), token_matches=int(n_token[f]),
        context_matches=int(n_match[f]), contexts=int(valid[f].sum()), top_value=float(top_value[f]),
        explanation=explanations.get(int(f)), url=labels.neuronpedia_url(int(f)),
    ) for f in (order if top is None else order[:top])]


def _context_matches(q: _Query, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """(F, k) whether each top context's activating token matches, and how much of the query its context holds:
    1 for the whole query, else the share of the query's words found as words of the context."""
    ids = np.array(sorted(labels.vocab), dtype=np.int64)
    size = int(ids.max()) + 2 if len(ids) else 1
    text = np.full(size, "", dtype=object)  # the last slot stands for -1 (outside the sample)
    text[ids] = [labels.vocab[int(i)].lower() for i in ids]
    hit = np.zeros(size, bool)
    hit[ids] = [q.token_hit(labels.vocab[int(i)]) for i in ids]
    ctx = np.where(labels.contexts >= 0, labels.contexts, size - 1)
    token = hit[ctx[:, :, labels.context]]
    joined = ["".join(row) for row in text[ctx.reshape(-1, ctx.shape[2])]]
    phrase = np.fromiter((q.text in t for t in joined), bool, len(joined))
    words = np.zeros(len(joined))
    for w in q.words:
        rx = re.compile(rf"\b{re.escape(w)}\b")
        words += np.fromiter((rx.search(t) is not None for t in joined), bool, len(joined))
    overlap = np.where(phrase, 1.0, words / max(len(q.words), 1))
    return token, overlap.reshape(ctx.shape[:2])


def load_explanations(path: str | Path | None) -> dict[int, str]:
    """Feature explanations from a local JSON file (or a label folder's ``explanations.json``); ``{}`` if none.

    Accepted forms: ``{"12": "text", ...}``; or a list of objects with the feature under ``index``/``feature``
    and the text under ``description``/``explanation``/``text`` (Neuronpedia's export), or under
    ``explanations: [{"description": ...}]``.
    """
    if path is None:
        return {}
    p = Path(path)
    if p.is_dir():
        p = p / EXPLANATIONS_FILE
        if not p.exists():
            return {}
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MonaError(f"cannot read feature explanations {p}: {exc}") from None
    if isinstance(data, dict):
        return {int(k): str(v) for k, v in data.items() if str(k).isdigit() and v}
    out: dict[int, str] = {}
    for e in data if isinstance(data, list) else []:
        if not isinstance(e, dict):
            continue
        fid = e.get("index", e.get("feature"))
        text = e.get("description") or e.get("explanation") or e.get("text")
        if text is None and isinstance(e.get("explanations"), list) and e["explanations"]:
            text = (e["explanations"][0] or {}).get("description")
        if fid is not None and str(fid).isdigit() and text:
            out[int(fid)] = str(text)
    return out


def save_search(path: str | Path, query: str, matches: Sequence[FeatureMatch], labels: Any = None) -> Path:
    """Write a saved search (atomic JSON) that ``exclude_features=["@FILE"]`` and friends read."""
    doc = {
        "format_version": SEARCH_FORMAT,
        "query": query,
        "features": [{"feature": m.feature, "score": round(m.score, 6), "label": m.label} for m in matches],
    }
    if labels is not None:
        doc["labels"] = str(labels.path) if labels.path is not None else None
        doc["sae"] = labels.manifest.get("sae")
    return atomic_write_json(Path(path), doc)


def load_search(path: str | Path) -> dict[str, Any]:
    """A saved search back as a dict (its ``features`` as written)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MonaError(f"cannot read saved feature search {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("features"), list):
        raise MonaError(f"{path} is not a saved feature search (needs a 'features' list)")
    return data


# --------------------------------------------------------------------------------------------------------
# Finding a label cache
# --------------------------------------------------------------------------------------------------------


def find_labels(sae_identity: dict[str, Any], root: str | Path | None = None) -> Path | None:
    """The label folder under ``MONA_HOME/labels`` (or ``root``) made with this SAE (same weights hash, else same
    name and width), the most recently written first; ``None`` when there is none."""
    base = Path(root) if root is not None else mona_home() / "labels"
    found = []
    for manifest in base.glob("*/manifest.json") if base.is_dir() else ():
        try:
            sae = json.loads(manifest.read_text(encoding="utf-8")).get("sae") or {}
        except (OSError, ValueError):
            continue
        if _same_sae(sae, sae_identity):
            found.append((manifest.stat().st_mtime, manifest.parent))
    if not found:
        return None
    found.sort(reverse=True)
    if len(found) > 1:
        log.info("%d label folders for SAE %s; using the newest, %s (pass --labels to choose)", len(found),
                 sae_identity.get("name"), found[0][1])
    return found[0][1]


def _same_sae(a: dict[str, Any], b: dict[str, Any]) -> bool:
    ha, hb = a.get("weights_hash"), b.get("weights_hash")
    if ha and hb and "unknown" not in (ha, hb):
        return ha == hb
    return bool(a.get("name")) and a.get("name") == b.get("name") and a.get("d_sae") == b.get("d_sae")


def resolve_labels(labels: Any = None, *, sae: Any = None, store: Any = None) -> Any:
    """Feature labels from a label folder or object, else the cached labels of ``sae`` (a ``load_sae`` spec or
    an SAE object) or of the SAE a store was embedded with. One-line error naming ``mona labels`` if none."""
    from mona.labels import load_labels

    if labels is not None:
        return _as_labels(labels) if not isinstance(labels, (str, Path)) else load_labels(labels)
    if sae is not None:
        from mona.saes import resolve_sae

        identity, spec = resolve_sae(sae).identity.to_dict(), str(sae) if isinstance(sae, (str, Path)) else "SPEC"
    elif store is not None:
        identity = (getattr(store, "manifest", None) or {}).get("sae") or {}
        spec = str(identity.get("source", "SPEC")).removeprefix("builtin:").removeprefix("local:") or "SPEC"
        if not identity:
            raise MonaError("the store records no SAE (is it an SAE store?); pass --labels DIR")
    else:
        raise MonaError("feature labels are needed: pass --labels DIR or --sae SPEC")
    path = find_labels(identity)
    if path is None:
        raise MonaError(f"no feature labels for SAE {identity.get('name')!r} under {mona_home() / 'labels'}; build "
                        f"them with `mona labels SAMPLES --sae {spec}` (or pass --labels DIR)")
    return load_labels(path)


def check_labels_match(labels: Any, store: Any) -> None:
    """One-line error when feature labels were made with another SAE than the store (when both record it)."""
    have = (getattr(labels, "manifest", None) or {}).get("sae") or {}
    want = (getattr(store, "manifest", None) or {}).get("sae") or {}
    if have and want and not _same_sae(have, want):
        raise MonaError(f"the feature labels in {labels.path} were made with SAE {have.get('name')!r} "
                        f"({have.get('weights_hash')}), the store with {want.get('name')!r} "
                        f"({want.get('weights_hash')})")


def _as_labels(labels: Any) -> Any:
    if isinstance(labels, (str, Path)):
        from mona.labels import load_labels

        return load_labels(labels)
    if not hasattr(labels, "examples") or not hasattr(labels, "contexts"):
        raise MonaError(f"not feature labels: {type(labels).__name__} (pass a label folder or FeatureLabels)")
    return labels


def check_ids(ids: Iterable[Any], n_features: int, what: str = "feature") -> list[int]:
    """Feature ids as ints, after checking each exists (one-line error naming the bad ones)."""
    out, bad = [], []
    for i in ids:
        try:
            f = int(str(i).strip())
        except ValueError:
            bad.append(str(i))
            continue
        (out if 0 <= f < n_features else bad).append(f)
    if bad:
        raise MonaError(f"unknown {what} id(s) {bad[:10]}: the SAE has {n_features} features (0..{n_features - 1})")
    return out


# --------------------------------------------------------------------------------------------------------
# Pool statistics of features
# --------------------------------------------------------------------------------------------------------


def store_width(store: Any) -> int:
    m = getattr(store, "manifest", None) or {}
    if m.get("n_features"):
        return int(m["n_features"])
    if (m.get("sae") or {}).get("d_sae"):
        return int(m["sae"]["d_sae"])
    return int(store.codes().shape[1])


def _blocks(store: Any) -> Iterator[tuple[int, sp.csr_matrix]]:
    """(first row, CSR block) over a store: shard by shard when it streams, else all at once."""
    if hasattr(store, "iter_codes"):
        yield from store.iter_codes()
    else:
        yield 0, sp.csr_matrix(store.codes())


def feature_stats(store: Any, ids: Iterable[Any], *, threshold: float = 0.0, top: int = 5) -> list[dict[str, Any]]:
    """Per feature of ``ids``: in how many of the store's samples it is active (pooled code above ``threshold``),
    its mean pooled value (over all samples and over those where it is active), and the ``top`` samples with
    the highest value. Reads the store one shard at a time."""
    from mona.select.inputs import open_any, store_mode

    store = open_any(store)
    if store_mode(store) != "sae":
        raise MonaError(f"feature statistics need an SAE store; this one has mode {store_mode(store)!r}")
    feats = check_ids(ids, store_width(store))
    cols = np.array(feats, np.int64)
    count = np.zeros(len(cols), np.int64)
    total = np.zeros(len(cols), np.float64)
    active_total = np.zeros(len(cols), np.float64)
    best: list[list[tuple[float, int]]] = [[] for _ in cols]
    n = 0
    for start, block in _blocks(store):
        sub = sp.csc_matrix(block[:, cols])
        n += block.shape[0]
        for i in range(len(cols)):
            lo, hi = sub.indptr[i], sub.indptr[i + 1]
            rows, vals = sub.indices[lo:hi], sub.data[lo:hi].astype(np.float64)
            count[i] += int((vals > threshold).sum())
            total[i] += float(vals.sum())
            active_total[i] += float(vals[vals > threshold].sum())
            keep = np.argsort(-vals, kind="stable")[:top]
            merged = best[i] + [(float(vals[j]), int(start + rows[j])) for j in keep]
            best[i] = sorted(merged, key=lambda t: (-t[0], t[1]))[:top]
    ids_all = store.ids
    return [{
        "feature": int(f),
        "active": int(count[i]),
        "share": count[i] / max(n, 1),
        "mean": total[i] / max(n, 1),
        "mean_active": active_total[i] / count[i] if count[i] else 0.0,
        "samples": n,
        "top": [{"row": r, "id": str(ids_all[r]), "value": v} for v, r in best[i] if v > threshold],
    } for i, f in enumerate(feats)]
