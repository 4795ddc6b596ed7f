"""One forward pass per sample set, cached: token-level SAE codes, dense means, per-layer first/last tokens.

The selection-quality benchmark compares many poolings, spans and weightings of the same SAE codes. Instead of
one ``mona embed`` run per variant, this reads the model once per sample set and keeps, per sample:

* the raw residual of every valid token at the hook (float16, or float32 where values exceed float16's range,
  so any SAE on that hook can be tried without running the model again) with a flag for the response span; SAE
  codes are encoded from it on load,
* the mean raw residual at the hook (the ``dense`` baseline),
* the first and last valid token's residual at every layer up to the hook's (NAIT, cost-matched: the same
  forward pass; a full-depth NAIT costs ~3x more on this model).

Every variant is then pooled from these arrays with :func:`mona.pooling.pool_tokens`, the function the
embedding stage itself uses. Cached as .npy under ``$MONA_HOME/bench/<key>/`` (no pickle).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from mona.activations import ActivationConfig, iter_activations
from mona.data import Sample, fingerprint
from mona.models import LoadedModel, mona_home
from mona.pooling import first_last, pool_tokens
from mona.saes import LoadedSAE

log = logging.getLogger(__name__)


@dataclass
class TokenCodes:
    """Token-level SAE codes of a sample set, in sample order."""

    ids: list[str]
    codes: sp.csr_matrix
    """(tokens, F) SAE codes of all valid tokens, samples concatenated in order."""
    offsets: np.ndarray
    """(n+1,) token offsets of each sample in ``codes``."""
    response: np.ndarray
    """(tokens,) bool: token lies in the response span."""
    dense: np.ndarray
    """(n, d) mean raw residual over all valid tokens."""
    layers: np.ndarray
    """(n, L, 2, d) first/last valid-token residual at layers 0..L-1."""

    def pooled(self, pooling: str, span: str = "all", threshold: float = 0.0) -> sp.csr_matrix:
        """Sample embeddings (n, F) with the embedding stage's own pooling."""
        keep = (
            np.ones(self.codes.shape[0], bool)
            if span == "all"
            else (self.response if span == "response" else ~self.response)
        )
        rows = np.repeat(np.arange(len(self.ids)), np.diff(self.offsets))[keep]
        out = []
        x_all = self.codes[keep]
        for lo in range(0, len(self.ids), 512):
            hi = min(lo + 512, len(self.ids))
            sel = (rows >= lo) & (rows < hi)
            x = torch.from_numpy(x_all[sel].toarray())
            r = torch.from_numpy(rows[sel] - lo)
            out.append(sp.csr_matrix(pool_tokens(x, r, hi - lo, pooling, threshold).numpy()))
        return sp.vstack(out).tocsr()


VERSION = "content-tokens-v2"  # bump when the activation stage's token masking changes


def _key(samples: list[Sample], loaded: LoadedModel, max_tokens: int) -> str:
    parts = [fingerprint(samples), loaded.identity.weights_hash, str(max_tokens), VERSION]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


@dataclass
class Residuals:
    """Per-token raw residuals at one hook (float16) of a sample set: the model's part, computed once."""

    ids: list[str]
    resid: np.ndarray
    """(tokens, d) float16 (float32 if out of float16's range), valid tokens of all samples in order."""
    offsets: np.ndarray
    response: np.ndarray
    dense: np.ndarray
    """(n, d) mean residual at the hook."""
    layers: np.ndarray
    """(n, L, 2, d) first/last valid-token residual at layers 0..L-1 (L = deepest hook of the pass + 1)."""


@torch.inference_mode()
def residuals(
    samples: list[Sample],
    loaded: LoadedModel,
    hook: str,
    *,
    max_tokens: int = 256,
    name: str = "set",
    extra_hooks: tuple[str, ...] = (),
) -> Residuals:
    """Read the model once per sample set (cached under $MONA_HOME/bench; ``extra_hooks`` are saved too)."""
    root = mona_home() / "bench" / f"{name}-{_key(samples, loaded, max_tokens)}"
    tag = hook.replace(".", "_")
    if not ((root / "ids.json").exists() and (root / f"resid-{tag}.npy").exists()):
        _compute_in_parts(samples, loaded, (hook, *extra_hooks), max_tokens, root)
    return Residuals(
        json.loads((root / "ids.json").read_text()),
        np.load(root / f"resid-{tag}.npy", mmap_mode="r"),
        np.load(root / "offsets.npy"),
        np.load(root / "response.npy"),
        np.load(root / f"dense-{tag}.npy"),
        np.load(root / "layers.npy"),
    )


PART = 400  # samples per resumable part of a cache


def _compute_in_parts(samples: list[Sample], loaded: LoadedModel, hooks: tuple[str, ...], max_tokens: int,
                      root: Path) -> None:
    """:func:`_compute` on parts of ``PART`` samples, each saved under ``root/parts/`` as it completes (a rerun
    after an interruption skips the finished parts), then joined into ``root``'s arrays."""
    parts = [(i, samples[i : i + PART]) for i in range(0, len(samples), PART)]
    for i, chunk in parts:
        folder = root / "parts" / f"{i:08d}"
        if not all((folder / n).exists() for n in ("ids.json", *(f"resid-{h.replace('.', '_')}.npy" for h in hooks))):
            log.info("features of samples %d-%d of %d", i, i + len(chunk), len(samples))
            _compute(chunk, loaded, hooks, max_tokens, folder)
    folders = [root / "parts" / f"{i:08d}" for i, _ in parts]
    for h in hooks:
        tag = h.replace(".", "_")
        np.save(root / f"dense-{tag}.npy", np.concatenate([np.load(f / f"dense-{tag}.npy") for f in folders]))
        resid = [np.load(f / f"resid-{tag}.npy") for f in folders]
        wide = any(r.dtype != np.float16 for r in resid)
        np.save(root / f"resid-{tag}.npy", np.concatenate([r.astype(np.float32) if wide else r for r in resid]))
    counts = np.concatenate([np.diff(np.load(f / "offsets.npy")) for f in folders])
    np.save(root / "offsets.npy", np.concatenate([[0], np.cumsum(counts)]))
    np.save(root / "response.npy", np.concatenate([np.load(f / "response.npy") for f in folders]))
    np.save(root / "layers.npy", np.concatenate([np.load(f / "layers.npy") for f in folders]))
    # ids last: its presence marks a complete cache folder (as it marks a complete part)
    (root / "ids.json").write_text(json.dumps([s.id for s in samples]))


def _compute(samples: list[Sample], loaded: LoadedModel, hooks: tuple[str, ...], max_tokens: int, root: Path) -> None:
    deepest = max(int(h.split(".")[1]) for h in hooks)
    all_hooks = tuple(dict.fromkeys((*hooks, *(f"blocks.{i}.hook_resid_post" for i in range(deepest + 1)))))
    n, d = len(samples), loaded.d_model
    per_sample: dict[str, list] = {h: [None] * n for h in hooks}
    response: list = [None] * n
    dense = {h: np.zeros((n, d), np.float32) for h in hooks}
    layers = np.zeros((n, deepest + 1, 2, d), np.float16)
    cfg = ActivationConfig(hooks=all_hooks, max_tokens=max_tokens, batch_tokens=4096)
    for batch in iter_activations(loaded, samples, cfg):
        for lay in range(deepest + 1):
            fl = first_last(batch.acts[f"blocks.{lay}.hook_resid_post"], batch.valid)
            layers[batch.indices, lay] = fl.numpy().astype(np.float16)
        counts = batch.valid.sum(1)
        starts = np.concatenate([[0], np.cumsum(counts.numpy())])
        rows = torch.repeat_interleave(torch.arange(len(batch.indices)), counts)
        resp = batch.response[batch.valid].numpy()
        for j, idx in enumerate(batch.indices):
            response[idx] = resp[starts[j] : starts[j + 1]]
        for h in hooks:
            tok = batch.acts[h][batch.valid]
            dense[h][batch.indices] = pool_tokens(tok, rows, len(batch.indices), "mean").numpy()
            tok32 = tok.numpy()
            for j, idx in enumerate(batch.indices):
                per_sample[h][idx] = tok32[starts[j] : starts[j + 1]]
    root.mkdir(parents=True, exist_ok=True)
    for h in hooks:
        tag = h.replace(".", "_")
        resid = np.concatenate(per_sample[h])
        # float16 halves the cache, but deeper residuals of some models (Gemma 3 from layer ~12) exceed its range
        fits = float(np.abs(resid).max(initial=0.0)) < float(np.finfo(np.float16).max)
        np.save(root / f"resid-{tag}.npy", resid.astype(np.float16) if fits else resid)
        np.save(root / f"dense-{tag}.npy", dense[h])
    np.save(root / "offsets.npy", np.concatenate([[0], np.cumsum([len(r) for r in response])]))
    np.save(root / "response.npy", np.concatenate(response))
    np.save(root / "layers.npy", layers)
    (root / "ids.json").write_text(json.dumps([s.id for s in samples]))


@torch.inference_mode()
def encode(res: Residuals, sae: LoadedSAE, chunk: int = 8192) -> TokenCodes:
    """SAE codes of every cached token (sparse), with the sample bookkeeping of ``res``."""
    parts = []
    for lo in range(0, res.resid.shape[0], chunk):
        x = torch.from_numpy(np.asarray(res.resid[lo : lo + chunk], dtype=np.float32))
        parts.append(sp.csr_matrix(sae.encode(x).numpy()))
    codes = sp.vstack(parts).tocsr().astype(np.float32)
    return TokenCodes(res.ids, codes, res.offsets, res.response, res.dense, res.layers)


def extract(
    samples: list[Sample], loaded: LoadedModel, sae: LoadedSAE, *, max_tokens: int = 256, name: str = "set"
) -> TokenCodes:
    return encode(residuals(samples, loaded, sae.hook, max_tokens=max_tokens, name=name), sae)
