"""Training text for SAEs: read a local corpus, render instruction records as model text, hold some out.

A corpus is a list of strings the model reads. Sources:

* ``.txt``: paragraphs separated by blank lines (a file without blank lines: one text per line);
* ``.jsonl`` / ``.json`` / ``.parquet`` / a ``datasets.Dataset`` (or a folder saved with ``save_to_disk``):
  records with a plain ``text`` field are used as is; instruction records (alpaca, chat, prompt-response — any
  format :mod:`mona.data` reads) are rendered with :func:`mona.data.render` in the model's chat format, so
  the SAE sees the same token stream the activation stage will feed it;
* ``mona:sae-corpus``: plain English mixed with instruction samples, built offline by
  :func:`mona.demo.build_sae_corpus`.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mona.data import iter_records, render, to_sample
from mona.errors import DataError

log = logging.getLogger(__name__)

BUILTIN_CORPUS = "mona:sae-corpus"


def _texts_from_records(records: Iterable[tuple[str, dict[str, Any]]], tokenizer: Any, text_field: str,
                        limit: int | None) -> list[str]:
    texts: list[str] = []
    for where, record in records:
        if limit is not None and len(texts) >= limit:
            break
        value = record.get(text_field)
        if isinstance(value, str) and not any(k in record for k in ("messages", "conversations", "instruction")):
            text = value
        else:
            text = render(to_sample(record, "auto", where=where), tokenizer).text
        if text.strip():
            texts.append(text)
    return texts


def _read_txt(path: Path, limit: int | None) -> list[str]:
    raw = path.read_text(encoding="utf-8")
    parts = [p.strip() for p in raw.split("\n\n")] if "\n\n" in raw else [p.strip() for p in raw.splitlines()]
    texts = [p for p in parts if p]
    return texts[:limit] if limit is not None else texts


def load_corpus(source: str | Path | list[str] | Any, tokenizer: Any = None, *, text_field: str = "text",
                limit: int | None = None, seed: int = 0) -> list[str]:
    """The texts of a corpus, in model format. Raises :class:`DataError` for a missing or empty corpus."""
    if isinstance(source, list) and all(isinstance(t, str) for t in source):
        texts = [t for t in source if t.strip()]
    elif isinstance(source, str) and source == BUILTIN_CORPUS:
        texts = _builtin_corpus(tokenizer, limit, seed)
    elif isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        if not path.exists():
            raise DataError(f"{path}: no such corpus file or folder")
        if path.is_dir():
            texts = _from_dataset(_load_dataset_dir(path), tokenizer, text_field, limit)
        elif path.suffix.lower() == ".txt":
            texts = _read_txt(path, limit)
        else:
            texts = _texts_from_records(iter_records(path), tokenizer, text_field, limit)
    else:
        texts = _from_dataset(source, tokenizer, text_field, limit)
    if not texts:
        raise DataError(f"corpus {_name(source)} holds no text")
    return texts


def _from_dataset(dataset: Any, tokenizer: Any, text_field: str, limit: int | None) -> list[str]:
    try:
        rows = ((f"row {i}", dict(row)) for i, row in enumerate(dataset))
    except TypeError:
        raise DataError(f"cannot read a corpus from a {type(dataset).__name__}") from None
    return _texts_from_records(rows, tokenizer, text_field, limit)


def _load_dataset_dir(path: Path) -> Any:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as exc:
        reason = str(exc).splitlines()[0]
        raise DataError(f"{path}: not a folder written by datasets' save_to_disk ({reason})") from None
    if isinstance(loaded, datasets.DatasetDict):
        loaded = loaded["train"] if "train" in loaded else next(iter(loaded.values()))
    return loaded


def _builtin_corpus(tokenizer: Any, limit: int | None, seed: int) -> list[str]:
    try:
        from mona.demo import build_sae_corpus
    except ImportError:
        raise DataError(f"{BUILTIN_CORPUS} needs mona.demo.build_sae_corpus, which this install lacks") from None
    kwargs: dict[str, Any] = {"seed": seed}
    if limit is not None:
        kwargs["n_texts"] = limit
    built = build_sae_corpus(**kwargs)
    return [t for t in built if t.strip()]


def _name(source: Any) -> str:
    return str(source) if isinstance(source, (str, Path)) else type(source).__name__


def split_corpus(texts: list[str], eval_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Shuffle (seeded) and split into (train, held-out). At least one text stays on each side when possible."""
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    n_eval = int(round(len(texts) * eval_fraction))
    if eval_fraction > 0 and len(texts) > 1:
        n_eval = min(max(n_eval, 1), len(texts) - 1)
    held = [texts[i] for i in order[:n_eval]]
    train = [texts[i] for i in order[n_eval:]]
    return train, held
