"""``nait`` — NAIT (arXiv 2603.13201): score candidates along the principal direction of the target's activation drift.

For every target sample and layer l, the drift ΔA_l = A_l(last token) − A_l(first token). The layer's
direction v_l is the first principal component of the target drifts, signed so that mean(ΔA_l)·v_l > 0.
A candidate y scores Σ_l A_l(y)·v_l, where A_l(y) is its last-token activation (or its own drift).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from jaxtyping import Float
from tqdm.auto import tqdm

from mona.errors import MonaError
from mona.select.methods.base import Context, Scored, TargetMethod, require_group

log = logging.getLogger(__name__)


@dataclass
class NaitOptions:
    """NAIT's settings."""

    nait_candidate: Literal["last", "drift"] = "last"
    """Project the candidate's last-token activation (the paper's A_l(y)) or its drift last − first."""
    nait_layers: tuple[int, ...] | None = None
    """Layers to sum over (default: all layers in the store)."""
    nait_center: bool = True
    """Centre the target drifts before taking their first principal component (standard PCA)."""
    nait_standardize: bool = True
    """Divide every dimension of every layer by its standard deviation over the pool's candidate activations
    before finding the directions and projecting. The paper's projection assumes comparable dimensions; in
    Gemma-style residual streams a few dimensions have ~100x the spread of the rest and otherwise decide every
    direction and score. Off: the paper's raw activations."""

    def __post_init__(self) -> None:
        if self.nait_candidate not in ("last", "drift"):
            raise MonaError(f"nait_candidate must be one of last, drift; got {self.nait_candidate!r}")
        if self.nait_layers is not None:
            self.nait_layers = tuple(int(x) for x in self.nait_layers)


class Nait(TargetMethod):
    name = "nait"
    summary = "projection on the target's principal activation drift, summed over layers"
    Options = NaitOptions
    pool_modes = ("layers",)

    def score(self, ctx: Context, group: list[Any], k: int) -> Scored:
        return score_nait(ctx.pool, group, k, ctx.options)


def nait_directions(
    layers: Float[np.ndarray, "m L 2 d"], center: bool = True, scale: Float[np.ndarray, "L d"] | None = None
) -> tuple[Float[np.ndarray, "L d"], Float[np.ndarray, " L"]]:
    """Unit direction per layer from target activations ``[first, last]``, and its explained-variance ratio.

    ``scale`` (per layer and dimension, e.g. 1/sd over the pool) multiplies the drifts first: the directions are
    then in the scaled coordinates, and a candidate must be scaled alike before projecting."""
    layers = np.asarray(layers, dtype=np.float64)
    if layers.ndim != 4 or layers.shape[2] != 2:
        raise MonaError(f"NAIT needs per-layer [first, last] activations of shape (n, L, 2, d), got {layers.shape}")
    m, L, _, d = layers.shape
    if m < 2:
        raise MonaError(f"NAIT needs at least 2 target samples to find a principal direction, got {m}")
    drifts = layers[:, :, 1, :] - layers[:, :, 0, :]  # (m, L, d)
    if scale is not None:
        drifts = drifts * np.asarray(scale, np.float64)[None]
    dirs = np.zeros((L, d))
    explained = np.zeros(L)
    for layer in range(L):
        D = drifts[:, layer, :]
        Dc = D - D.mean(axis=0) if center else D
        _, s, vt = np.linalg.svd(Dc, full_matrices=False)
        v = vt[0]
        if float(D.mean(axis=0) @ v) < 0:
            v = -v
        dirs[layer] = v
        energy = float((s**2).sum())
        explained[layer] = float(s[0] ** 2 / energy) if energy > 0 else 0.0
    return dirs, explained


def nait_scores(
    layers: Float[np.ndarray, "n L 2 d"],
    directions: Float[np.ndarray, "L d"],
    candidate: str = "last",
    chunk: int = 4096,
) -> Float[np.ndarray, " n"]:
    """Σ_l A_l(y)·v_l for every row (A = last-token activation, or last − first when ``candidate="drift"``)."""
    n = layers.shape[0]
    out = np.empty(n, np.float64)
    V = np.asarray(directions, dtype=np.float32)
    for a in tqdm(range(0, n, chunk), desc="nait", disable=n <= 4 * chunk, leave=False):
        block = np.asarray(layers[a : a + chunk], dtype=np.float32)
        A = block[:, :, 1, :] if candidate == "last" else block[:, :, 1, :] - block[:, :, 0, :]
        out[a : a + chunk] = np.einsum("nld,ld->n", A, V, dtype=np.float64)
    return out


def candidate_scale(
    layers: Float[np.ndarray, "n L 2 d"], candidate: str = "last", chunk: int = 4096
) -> Float[np.ndarray, "L d"]:
    """1 / standard deviation over the rows of each layer's candidate activation (last token, or last − first),
    per dimension; dimensions without spread keep scale 1."""
    n = layers.shape[0]
    total = sq = None
    for a in range(0, n, chunk):
        block = np.asarray(layers[a : a + chunk], dtype=np.float64)
        A = block[:, :, 1, :] if candidate == "last" else block[:, :, 1, :] - block[:, :, 0, :]
        total = A.sum(axis=0) if total is None else total + A.sum(axis=0)
        sq = (A**2).sum(axis=0) if sq is None else sq + (A**2).sum(axis=0)
    mean = total / n
    sd = np.sqrt(np.maximum(sq / n - mean**2, 0.0))
    return np.where(sd > 1e-12, 1.0 / np.where(sd > 1e-12, sd, 1.0), 1.0)


def _pick_layers(arr: np.ndarray, layers: tuple[int, ...] | None) -> np.ndarray:
    if layers is None:
        return arr
    L = arr.shape[1]
    bad = [x for x in layers if not -L <= x < L]
    if bad:
        raise MonaError(f"nait_layers {bad} out of range for a store with {L} layers")
    return arr[:, list(layers)]


def score_nait(pool: Any, group: list[Any], k: int, opts: NaitOptions) -> Scored:
    """NAIT scores of every pool row against one target set of ``layers`` stores."""
    require_group(group, k, ("layers",), "nait", pool)
    T = np.concatenate([_pick_layers(np.asarray(s.layers()), opts.nait_layers) for s in group], axis=0)
    P = _pick_layers(pool.layers(), opts.nait_layers)
    if P.shape[1:] != T.shape[1:]:
        raise MonaError(f"pool layer activations have shape {P.shape[1:]} but target ones {T.shape[1:]}")
    scale = candidate_scale(P, opts.nait_candidate) if opts.nait_standardize else None
    dirs, explained = nait_directions(T, center=opts.nait_center, scale=scale)
    # projecting the scaled candidate on v equals projecting the raw one on scale ⊙ v
    proj = dirs * scale if scale is not None else dirs
    scores = nait_scores(P, proj.astype(np.float32), opts.nait_candidate)
    return Scored(scores, info={"explained_variance": [round(float(e), 4) for e in explained]})
