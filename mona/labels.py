"""Feature labels: each SAE feature's top-activating tokens in a corpus, with their context, cached on disk.

Computed once per (model, SAE, corpus, settings) with one streamed pass: every batch's valid tokens are encoded
by the SAE and merged into a running top-k per feature (``torch.topk`` over the running values concatenated
with the batch's, chunk by chunk), so memory is O(F·k + chunk·F) whatever the corpus size. The context window
of every kept token is cut from the corpus tokens at the end.

A label folder holds ``labels.safetensors`` (``values`` (F, k) float32, descending; ``sample`` / ``position``
(F, k) int32, -1 where a feature has fewer than k activating tokens; ``contexts`` (F, k, 2c+1) int32 token ids,
-1 outside the sample; ``counts`` (F,) tokens where the feature fired; ``sums`` (F,) its total activation),
``vocab.json`` (token id -> text for every id used in a context) and ``manifest.json`` (model and SAE identity,
corpus fingerprint, settings, sample ids, Neuronpedia id). Nothing is pickled.

For an SAE from sae-lens's registry, ``neuronpedia_url(f)`` links to the feature's Neuronpedia page (the id comes
from sae-lens's own metadata, no network is used). :meth:`FeatureLabels.label` is a short automatic label: the
top-activating tokens that carry the most activation.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from jaxtyping import Float, Int
from tqdm.auto import tqdm

from mona.errors import MonaError
from mona.io import atomic_write, atomic_write_json, atomic_write_text, check_format, json_hash, mona_home

log = logging.getLogger(__name__)

LABELS_FILE = "labels.safetensors"
VOCAB_FILE = "vocab.json"
MANIFEST_FILE = "manifest.json"
LABELS_FORMAT = 1
NEURONPEDIA = "https://neuronpedia.org"


@dataclass
class LabelConfig:
    """How feature labels are computed. Saved in the label folder's ``manifest.json``."""

    top_k: int = 12
    """Top-activating tokens kept per feature."""
    context: int = 10
    """Tokens kept on each side of an activating token."""
    span: Literal["all", "prompt", "response"] = "all"
    """Which valid tokens are candidates (BOS, padding and chat-turn tokens never are)."""
    max_tokens: int = 256
    """Samples are truncated to this many tokens."""
    batch_tokens: int = 4096
    """Padded tokens per forward batch."""
    chunk_tokens: int = 1024
    """Tokens encoded and merged into the running top-k at once (memory: chunk_tokens x d_sae floats)."""
    max_samples: int | None = None
    """Use only the first this many corpus samples (``None``: all)."""

    def __post_init__(self) -> None:
        if self.span not in ("all", "prompt", "response"):
            raise MonaError(f"label span must be all, prompt or response; got {self.span!r}")
        for name in ("top_k", "max_tokens", "batch_tokens", "chunk_tokens"):
            if int(getattr(self, name)) < 1:
                raise MonaError(f"label {name} must be >= 1; got {getattr(self, name)}")
        if self.context < 0:
            raise MonaError(f"label context must be >= 0; got {self.context}")


@dataclass
class FeatureLabels:
    """Top-activating tokens of every feature of an SAE, with context; see the module docstring."""

    values: Float[np.ndarray, "F k"]
    sample: Int[np.ndarray, "F k"]
    position: Int[np.ndarray, "F k"]
    contexts: Int[np.ndarray, "F k w"]
    counts: Int[np.ndarray, " F"]
    sums: Float[np.ndarray, " F"]
    vocab: dict[int, str]
    manifest: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def n_features(self) -> int:
        return int(self.values.shape[0])

    @property
    def context(self) -> int:
        return (int(self.contexts.shape[2]) - 1) // 2

    def density(self, feature: int) -> float:
        """Share of corpus tokens on which the feature fired."""
        return float(self.counts[feature]) / max(int(self.manifest.get("tokens", 0)), 1)

    def examples(self, feature: int, n: int | None = None) -> list[dict[str, Any]]:
        """Top-activating tokens of ``feature``, strongest first: value, sample id, context tokens, centre index."""
        ids = self.manifest.get("sample_ids", [])
        out = []
        for j in range(self.values.shape[1] if n is None else min(n, self.values.shape[1])):
            s = int(self.sample[feature, j])
            if s < 0:
                break
            ctx = self.contexts[feature, j]
            keep = np.flatnonzero(ctx >= 0)
            out.append({
                "value": float(self.values[feature, j]),
                "sample": ids[s] if s < len(ids) else s,
                "position": int(self.position[feature, j]),
                "tokens": [self.vocab.get(int(t), "") for t in ctx[keep]],
                "center": int(np.searchsorted(keep, self.context)),
            })
        return out

    def top_tokens(self, feature: int, n: int = 3) -> list[str]:
        """The distinct activating tokens (stripped) carrying the most activation among the top-k."""
        weight: dict[str, float] = {}
        for j in range(self.values.shape[1]):
            if self.sample[feature, j] < 0:
                break
            tok = _show(self.vocab.get(int(self.contexts[feature, j, self.context]), "")).strip()
            if tok:
                weight[tok] = weight.get(tok, 0.0) + float(self.values[feature, j])
        return [t for t, _ in sorted(weight.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]

    def label(self, feature: int, n: int = 3) -> str:
        """Short automatic label: the top tokens joined (``""`` when the feature never fired)."""
        return " · ".join(repr(t)[1:-1] if t != t.strip() else t for t in self.top_tokens(feature, n))

    def neuronpedia_url(self, feature: int) -> str | None:
        npid = self.manifest.get("neuronpedia_id")
        return f"{NEURONPEDIA}/{npid}/{int(feature)}" if npid else None

    def save(self, out_dir: str | Path) -> Path:
        from safetensors.numpy import save_file

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        arrays = {
            "values": self.values.astype(np.float32),
            "sample": self.sample.astype(np.int32),
            "position": self.position.astype(np.int32),
            "contexts": self.contexts.astype(np.int32),
            "counts": self.counts.astype(np.int64),
            "sums": self.sums.astype(np.float64),
        }
        atomic_write(out / LABELS_FILE,
                     lambda tmp: save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp)))
        vocab = {str(k): v for k, v in sorted(self.vocab.items())}
        atomic_write_text(out / VOCAB_FILE, json.dumps(vocab, ensure_ascii=False, indent=0) + "\n")
        atomic_write_json(out / MANIFEST_FILE, self.manifest)
        self.path = out
        return out


def _show(token: str) -> str:
    return token.replace("\n", "⏎").replace("\t", "⇥")


def load_labels(path: str | Path) -> FeatureLabels:
    """Read a label folder written by :meth:`FeatureLabels.save`."""
    from safetensors.numpy import load_file

    d = Path(path)
    if not (d / MANIFEST_FILE).exists() or not (d / LABELS_FILE).exists():
        raise MonaError(f"{d} is not a feature-label folder (needs {MANIFEST_FILE} and {LABELS_FILE})")
    manifest = json.loads((d / MANIFEST_FILE).read_text())
    check_format(manifest.get("labels_format"), LABELS_FORMAT, "labels", d)
    a = load_file(str(d / LABELS_FILE))
    vocab = {int(k): v for k, v in json.loads((d / VOCAB_FILE).read_text(encoding="utf-8")).items()}
    return FeatureLabels(a["values"], a["sample"], a["position"], a["contexts"], a["counts"], a["sums"], vocab,
                         manifest, d)


# --------------------------------------------------------------------------------------------------------
# Computing labels
# --------------------------------------------------------------------------------------------------------


def merge_topk(
    best_v: Float[torch.Tensor, "F k"], best_key: Int[torch.Tensor, "F k"], z: Float[torch.Tensor, "n F"],
    keys: Int[torch.Tensor, " n"],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge a chunk of codes ``z`` (tokens ``keys``) into a running per-feature top-k (values, keys)."""
    k = best_v.shape[1]
    cand = torch.cat([best_v, z.T], dim=1)  # (F, k + n)
    v, i = cand.topk(k, dim=1, sorted=True)
    from_chunk = i >= k
    chunk_keys = keys[(i - k).clamp(min=0)]
    return v, torch.where(from_chunk, chunk_keys, best_key.gather(1, i.clamp(max=k - 1)))


def neuronpedia_id(sae: Any) -> str | None:
    """The Neuronpedia id of an SAE from sae-lens's metadata (``None`` for SAEs that have none)."""
    loaded = getattr(sae, "sae", sae)
    meta = getattr(getattr(loaded, "cfg", None), "metadata", None)
    npid = getattr(meta, "neuronpedia_id", None) if meta is not None else None
    if npid:
        return str(npid)
    source = str(getattr(getattr(sae, "identity", None), "source", "") or "")
    if source.startswith("registry:"):
        release, _, sae_id = source[len("registry:"):].partition("/")
        try:
            from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

            lookup = get_pretrained_saes_directory().get(release)
            return (lookup.neuronpedia_id or {}).get(sae_id) if lookup is not None else None
        except Exception:  # the registry is optional metadata here
            return None
    if source.startswith("local:"):
        cfg = Path(source[len("local:"):]) / "cfg.json"
        if cfg.exists():
            data = json.loads(cfg.read_text())
            return (data.get("metadata") or {}).get("neuronpedia_id") or data.get("neuronpedia_id")
    return None


def label_key(model_name: str, sae_identity: dict[str, Any], corpus: str, config: LabelConfig) -> str:
    return json_hash({"model": model_name, "sae": sae_identity, "corpus": corpus, "config": asdict(config)})


def default_labels_dir(sae_identity: dict[str, Any], key: str) -> Path:
    name = str(sae_identity.get("name", "sae")).replace("/", "_")
    return mona_home() / "labels" / f"{name}-{key}"


def compute_labels(
    samples: Any,
    *,
    model: Any = "gemma-3-270m",
    sae: Any = "default",
    hook: str | None = None,
    config: LabelConfig | None = None,
    out_dir: str | Path | None = None,
    progress: bool = True,
    runtime: Any = None,
) -> FeatureLabels:
    """Top-activating tokens per feature of ``sae`` over ``samples``; cached in ``out_dir``.

    ``samples``: a list of :class:`mona.data.Sample` or anything :func:`mona.data.load_samples` reads.
    ``model``: a model name/folder or a ``LoadedModel``; ``sae``: a ``load_sae`` spec, a ``LoadedSAE`` or a bare
    sae-lens SAE. ``out_dir`` defaults to ``MONA_HOME/labels/<sae>-<key>``, the key hashing the model name, SAE
    identity, corpus fingerprint and settings; labels already there are read back without running the model.
    ``runtime`` (:class:`mona.runtime.Runtime`): device and dtype of a model loaded here.
    """
    from mona.data import Sample, fingerprint, load_samples

    config = config or LabelConfig()
    if not (isinstance(samples, (list, tuple)) and samples and isinstance(samples[0], Sample)):
        samples = load_samples(samples)
    samples = list(samples)[: config.max_samples] if config.max_samples else list(samples)
    if not samples:
        raise MonaError("no samples to compute feature labels from")
    from mona.saes import resolve_sae

    handle = resolve_sae(sae, model=model, hook=hook)
    identity = handle.identity.to_dict()
    model_name = str(model) if isinstance(model, (str, Path)) else model.identity.name
    corpus = fingerprint(samples)
    key = label_key(model_name, identity, corpus, config)
    out = Path(out_dir) if out_dir is not None else default_labels_dir(identity, key)
    if (out / MANIFEST_FILE).exists():
        try:
            cached = load_labels(out)
            if cached.manifest.get("key") == key:
                log.info("feature labels for %s already in %s; reusing them", identity.get("name"), out)
                return cached
        except MonaError:
            pass
        log.info("recomputing feature labels in %s (made with other inputs or settings)", out)
    loaded = model
    if isinstance(model, (str, Path)):
        from mona.models import load_model

        loaded = load_model(str(model), runtime=runtime)
    hook = hook or identity.get("hook")
    if not hook:
        raise MonaError("the SAE does not record its hook; pass hook=")
    labels = _stream_topk(loaded, handle, samples, hook, int(identity["d_sae"]), config, progress)
    labels.manifest = {
        "labels_format": LABELS_FORMAT,
        "key": key,
        "model": loaded.identity.to_dict(),
        "model_name": model_name,
        "sae": identity,
        "hook": hook,
        "neuronpedia_id": neuronpedia_id(handle),
        "corpus": {"fingerprint": corpus, "n_samples": len(samples)},
        "config": asdict(config),
        "tokens": labels.manifest["tokens"],
        "sample_ids": [s.id for s in samples],
    }
    labels.save(out)
    log.info("feature labels of %d features from %d tokens written to %s", labels.n_features,
             labels.manifest["tokens"], out)
    return labels


def _stream_topk(loaded: Any, sae: Any, samples: Sequence[Any], hook: str, d_sae: int, config: LabelConfig,
                 progress: bool) -> FeatureLabels:
    from mona.activations import ActivationConfig, iter_activations

    k, c = config.top_k, config.context
    stride = config.max_tokens + 1
    best_v = torch.full((d_sae, k), float("-inf"))
    best_key = torch.full((d_sae, k), -1, dtype=torch.int64)
    counts = torch.zeros(d_sae, dtype=torch.int64)
    sums = torch.zeros(d_sae, dtype=torch.float64)
    pad = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else -1
    corpus_tokens: list[np.ndarray | None] = [None] * len(samples)
    n_tokens = 0
    act_config = ActivationConfig(hooks=(hook,), max_tokens=config.max_tokens, batch_tokens=config.batch_tokens)
    bar = tqdm(total=len(samples), desc="feature labels", unit="sample", disable=not progress)
    for batch in iter_activations(loaded, samples, act_config, progress=False):
        mask = {"all": batch.valid, "prompt": batch.prompt, "response": batch.response}[config.span]
        tokens = batch.tokens.numpy()
        for r, idx in enumerate(batch.indices):
            real = np.flatnonzero(tokens[r] != pad)
            corpus_tokens[int(idx)] = tokens[r, : (real[-1] + 1 if len(real) else 0)]
        rows, cols = mask.nonzero(as_tuple=True)
        x = batch.acts[hook][rows, cols]
        keys = torch.as_tensor(batch.indices, dtype=torch.int64)[rows] * stride + cols
        n_tokens += len(rows)
        for a in range(0, len(rows), config.chunk_tokens):
            z = sae.encode(x[a : a + config.chunk_tokens])
            counts += (z > 0).sum(0)
            sums += z.sum(0, dtype=torch.float64)
            best_v, best_key = merge_topk(best_v, best_key, z, keys[a : a + config.chunk_tokens])
        bar.update(len(batch.indices))
    bar.close()
    values = best_v.numpy().astype(np.float32)
    keys_np = best_key.numpy()
    empty = (keys_np < 0) | ~(values > 0)
    sample = np.where(empty, -1, keys_np // stride).astype(np.int32)
    position = np.where(empty, -1, keys_np % stride).astype(np.int32)
    values = np.where(empty, 0.0, values).astype(np.float32)
    contexts = _contexts(corpus_tokens, sample, position, c)
    vocab = _vocab(loaded.tokenizer, np.unique(contexts[contexts >= 0]))
    return FeatureLabels(values, sample, position, contexts, counts.numpy(), sums.numpy(), vocab,
                         {"tokens": int(n_tokens)})


def _contexts(corpus: list[np.ndarray | None], sample: np.ndarray, position: np.ndarray, c: int) -> np.ndarray:
    """(F, k, 2c+1) token ids around every kept token (-1 outside its sample), by one fancy-index gather."""
    width = max((len(t) for t in corpus if t is not None), default=0)
    table = np.full((len(corpus) + 1, width + 2 * c), -1, dtype=np.int64)  # last row: for empty slots
    for i, t in enumerate(corpus):
        if t is not None:
            table[i, c : c + len(t)] = t
    s = np.where(sample >= 0, sample, len(corpus))
    p = np.where(position >= 0, position, 0)
    offsets = np.arange(2 * c + 1)
    return table[s[..., None], p[..., None] + offsets].astype(np.int32)


def _vocab(tokenizer: Any, ids: np.ndarray) -> dict[int, str]:
    """Readable text of each token id (leading-space markers of SentencePiece/byte-level BPE kept as a space)."""
    out = {}
    raw = tokenizer.convert_ids_to_tokens([int(i) for i in ids])
    for i, r in zip(ids, raw, strict=False):
        text = tokenizer.decode([int(i)])
        if r and r[0] in ("▁", "Ġ") and not text.startswith(" "):
            text = " " + text
        out[int(i)] = text
    return out
