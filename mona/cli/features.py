"""``mona features``: find SAE features by meaning (``search``) and look at one (``show``)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mona.cli.args import add_command, add_config, config_from


@dataclass
class LabelSource:
    """Where the feature labels come from (``mona labels`` caches them)."""

    labels: Path | None = None
    """Label folder written by `mona labels` (default: the cached labels of --sae, or of --store's SAE)."""
    sae: str | None = None
    """SAE whose cached labels to use: 'default', a sae-lens folder, registry:<release>/<id>."""


@dataclass
class SearchArgs(LabelSource):
    """Options of ``mona features search``."""

    query: tuple[str, ...] = field(default=(), metadata={"positional": True, "nargs": "+"})
    """Text to look for in the features' top-activating tokens and contexts (words may be given unquoted)."""
    store: Path | None = None
    """An SAE store: its SAE's cached labels are used when neither --labels nor --sae is given."""
    top: int = 20
    """Features listed (and saved), best first."""
    min_score: float = 0.0
    """List only features scoring above this (0..1: the activation-weighted share of matching top contexts)."""
    examples: int = 3
    """Top-activating contexts printed per feature."""
    save: Path | None = None
    """Write the found features as a saved search (JSON) for --exclude-features @FILE and the other steering flags."""
    explanations: Path | None = None
    """Local feature explanations (JSON, e.g. a Neuronpedia export) to match too (default: the label folder's
    explanations.json when there is one)."""


@dataclass
class ShowArgs(LabelSource):
    """Options of ``mona features show``."""

    features: tuple[str, ...] = field(default=(), metadata={"positional": True, "nargs": "+"})
    """Feature ids, or @FILE for every feature of a saved search."""
    store: Path | None = None
    """An SAE store: adds pool statistics (samples where the feature is active, mean value, top samples)."""
    samples: Path | None = None
    """The store's samples (jsonl/json/parquet), to print the text of its top samples."""
    examples: int = 5
    """Top-activating contexts printed per feature."""
    top_samples: int = 5
    """Samples with the highest pooled value listed per feature (with --store)."""
    threshold: float = 0.0
    """A feature counts as active in a sample when its pooled code is above this."""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "features", help="find SAE features by meaning (search) and look at one (show)",
        description="Search the cached feature labels (top-activating tokens in context, from `mona labels`) for "
        "a text, save the found features for steering a selection, or show a feature's contexts and pool "
        "statistics.",
    )
    sub = p.add_subparsers(dest="features_command", required=True)
    s = add_command(sub, "search", run_search, help="list the features whose labels match a text",
                    description="Rank features by the activation-weighted share of their top contexts that match "
                    "the query (a match on the activating token counts twice a match in its context); see "
                    "docs/features.md.")
    add_config(s, SearchArgs)
    w = add_command(sub, "show", run_show, help="print features' top contexts and, with --store, pool statistics")
    add_config(w, ShowArgs)


def _open_store(path: Path | None) -> Any:
    if path is None:
        return None
    from mona.select.inputs import open_any

    return open_any(path)


def run_search(args: argparse.Namespace) -> int:
    from mona.errors import MonaError
    from mona.features import load_explanations, resolve_labels, save_search, search_features

    a = config_from(args, SearchArgs)
    query = " ".join(a.query)
    labels = resolve_labels(a.labels, sae=a.sae, store=_open_store(a.store) if not (a.labels or a.sae) else None)
    explanations = load_explanations(a.explanations) if a.explanations else None
    found = search_features(query, labels, top=a.top, explanations=explanations, min_score=a.min_score)
    if not found:
        if a.save:
            raise MonaError(f"no feature label matches {query!r}; nothing saved")
        print(f"no feature label matches {query!r} ({labels.n_features} features in {labels.path})")
        return 0
    print(f"{len(found)} features matching {query!r} (labels: {labels.path})")
    for m in found:
        extra = f"  {m.url}" if m.url else ""
        print(f"\n#{m.feature}  score {m.score:.3f}  ({m.context_matches}/{m.contexts} top contexts match, "
              f"{m.token_matches} on the activating token)  {m.label}{extra}")
        if m.explanation:
            print(f"    explanation: {m.explanation}")
        _print_contexts(labels, m.feature, a.examples)
    if a.save:
        path = save_search(a.save, query, found, labels)
        print(f"\nsaved {len(found)} features to {path}; steer a selection with --exclude-features @{path} "
              f"(or --require-features, --boost-features @{path}=2, --target-features)")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from mona.errors import MonaError
    from mona.features import check_ids, check_labels_match, feature_stats, resolve_labels, store_width

    a = config_from(args, ShowArgs)
    features = _feature_ids(a.features)
    store = _open_store(a.store)
    labels, missing = None, None
    try:
        labels = resolve_labels(a.labels, sae=a.sae, store=store if not (a.labels or a.sae) else None)
    except MonaError as exc:
        if store is None or a.labels or a.sae:
            raise
        missing = str(exc)
    if labels is not None:
        check_ids(features, labels.n_features)
    if store is not None:
        check_ids(features, store_width(store))
        if labels is not None:
            check_labels_match(labels, store)
    stats = {s["feature"]: s for s in feature_stats(store, features, threshold=a.threshold, top=a.top_samples)} \
        if store is not None else {}
    texts = _texts(a.samples) if a.samples else {}
    for f in features:
        head = f"#{f}"
        if labels is not None:
            url = labels.neuronpedia_url(f)
            head += f"  {labels.label(f) or '(never fires in the label corpus)'}" + (f"  {url}" if url else "")
            head += f"  fired on {int(labels.counts[f]):,} label-corpus tokens ({labels.density(f):.3%})"
        print(head)
        if labels is not None:
            _print_contexts(labels, f, a.examples)
        if f in stats:
            _print_stats(stats[f], texts)
        print()
    if missing:
        print(f"(no contexts: {missing})")
    return 0


def _feature_ids(specs: tuple[str, ...]) -> list[int]:
    """Ids in the order given, ``@FILE`` expanded to the features of a saved search (one-line errors)."""
    from mona.select.steer import parse_weights

    return list(parse_weights(list(specs), "features"))


def _print_contexts(labels: Any, f: int, n: int) -> None:
    for x in labels.examples(f, n):
        toks = [t.replace("\n", "⏎").replace("\t", "⇥") for t in x["tokens"]]
        c = x["center"]
        text = "".join(toks[:c]) + "[[" + (toks[c] if c < len(toks) else "") + "]]" + "".join(toks[c + 1:])
        print(f"    {x['value']:7.2f}  {text}")


def _print_stats(s: dict[str, Any], texts: dict[str, str]) -> None:
    print(f"    store: active in {s['active']:,} of {s['samples']:,} samples ({s['share']:.1%}); mean pooled value "
          f"{s['mean']:.4g} (over the samples where it is active: {s['mean_active']:.4g})")
    for t in s["top"]:
        text = texts.get(t["id"])
        snippet = f"  {' '.join(text.split())[:100]}" if text else ""
        print(f"    {t['value']:9.4g}  row {t['row']}  {t['id']}{snippet}")


def _texts(path: Path) -> dict[str, str]:
    from mona.data import load_samples

    return {str(s.id): s.plain for s in load_samples(path)}
