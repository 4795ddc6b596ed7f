"""Nearest-neighbour search over a store's embeddings with FAISS, scored exactly on the codes themselves.

Similarity is cosine: inner product of L2-normalised vectors. Two index kinds:

* ``flat``: ``IndexFlatIP`` over the normalised (densified) vectors: exact, used whenever ``n * width * 4`` bytes
  fit under ``flat_max_bytes``.
* ``ivf``: for larger pools, the normalised vectors are projected to at most 1024 dimensions (a random
  orthonormal projection, or PCA for narrow dense embeddings) and indexed with IVF + 8-bit scalar quantisation.
  That index only proposes ``k * rerank`` candidates; they are re-ranked by their exact cosine on the stored
  sparse codes, so returned scores are always exact.

The index is saved beside its store (``<store>/index/index.faiss`` via ``faiss.write_index`` + ``index.json``)
and refused if the store it was built on has changed.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import scipy.sparse as sp
from jaxtyping import Float
from tqdm.auto import tqdm

from mona.errors import ArtifactMismatch, MonaError
from mona.io import atomic_write, atomic_write_json
from mona.store import Store, pool_fingerprint

log = logging.getLogger(__name__)

IndexKind = Literal["auto", "flat", "ivf"]
Projection = Literal["random", "pca"]
INDEX_DIR = "index"


@dataclass
class IndexConfig:
    """How a store is indexed; saved as ``index.json`` beside the index."""

    kind: IndexKind = "auto"
    """``flat`` (exact), ``ivf`` (compressed + exact re-rank) or ``auto`` (flat when it fits)."""
    flat_max_bytes: int = 1 << 30
    """``auto`` picks ``flat`` when the densified float32 vectors take at most this many bytes."""
    dims: int = 256
    """``ivf``: dimensions after projection (at most 1024; wider vectors are projected down)."""
    projection: Projection = "random"
    """``ivf``: ``random`` orthonormal projection (any width) or ``pca`` (trained; for widths <= 4096)."""
    nlist: int | None = None
    """``ivf``: number of inverted lists; default about 4·sqrt(n)."""
    nprobe: int = 32
    """``ivf``: lists visited per query."""
    rerank: int = 10
    """``ivf``: candidates per query = k · rerank, re-ranked exactly on the codes."""
    train_size: int = 50_000
    """``ivf``: at most this many vectors train the projection and the coarse quantiser."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in get_args(IndexKind):
            raise MonaError(f"index kind must be one of {', '.join(get_args(IndexKind))}; got {self.kind!r}")
        if self.projection not in get_args(Projection):
            raise MonaError(f"index projection must be random or pca; got {self.projection!r}")
        if not 1 <= self.dims <= 1024:
            raise MonaError(f"index dims must be in 1..1024; got {self.dims}")
        if self.rerank < 1 or self.nprobe < 1:
            raise MonaError("index rerank and nprobe must be >= 1")


def normalize_rows(x: sp.csr_matrix | np.ndarray) -> sp.csr_matrix | np.ndarray:
    """L2-normalise rows (zero rows stay zero), float32."""
    if sp.issparse(x):
        x = sp.csr_matrix(x, dtype=np.float32)
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
        scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0).astype(np.float32)
        return sp.diags(scale) @ x
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def _dense(x: Any) -> np.ndarray:
    return np.ascontiguousarray(x.toarray() if sp.issparse(x) else x, dtype=np.float32)


def _blocks(source: Store | sp.csr_matrix | np.ndarray, size: int = 1024):
    if isinstance(source, Store):
        yield from source.iter_codes()
        return
    for start in range(0, source.shape[0], size):
        yield start, source[start : start + size]


@dataclass
class Index:
    """A FAISS index over one store (or matrix) of embeddings."""

    faiss_index: Any
    config: IndexConfig
    kind: str
    n: int
    width: int
    source: Store | sp.csr_matrix | np.ndarray | None = None
    """Where exact codes are read for re-ranking (the store, loaded lazily)."""
    store_key: str | None = None

    def _exact_codes(self) -> sp.csr_matrix:
        if not hasattr(self, "_codes"):
            if self.source is None:
                raise MonaError("this index has no source codes attached for exact re-ranking")
            codes = self.source.codes() if isinstance(self.source, Store) else self.source
            self._codes = normalize_rows(sp.csr_matrix(codes, dtype=np.float32))
        return self._codes

    def search(self, queries: Any, k: int) -> tuple[Float[np.ndarray, "q k"], np.ndarray]:
        """Top-``k`` rows by cosine for each query (CSR, dense array or Store): (scores, rows), row -1 = none."""
        if isinstance(queries, Store):
            queries = queries.codes()
        if queries.shape[1] != self.width:
            raise ArtifactMismatch(f"queries have width {queries.shape[1]}, the index holds width {self.width}")
        q = normalize_rows(queries if sp.issparse(queries) else np.asarray(queries, dtype=np.float32))
        k = min(k, self.n)
        if self.kind == "flat":
            scores, rows = self.faiss_index.search(_dense(q), k)
            return scores, rows
        import faiss

        faiss.extract_index_ivf(self.faiss_index).nprobe = self.config.nprobe
        want = min(self.n, k * self.config.rerank)
        scores = np.full((q.shape[0], k), -np.inf, dtype=np.float32)
        rows = np.full((q.shape[0], k), -1, dtype=np.int64)
        codes = self._exact_codes()
        for start, block in _blocks(q, 256):
            _, cand = self.faiss_index.search(_dense(block), want)
            for j in range(cand.shape[0]):
                c = cand[j][cand[j] >= 0]
                if not len(c):
                    continue
                qrow = block[j]
                exact = np.asarray((codes[c] @ qrow.T).todense() if sp.issparse(qrow) else codes[c] @ qrow.T)
                exact = exact.ravel().astype(np.float32)
                top = np.argsort(-exact, kind="stable")[:k]
                scores[start + j, : len(top)] = exact[top]
                rows[start + j, : len(top)] = c[top]
        return scores, rows

    def save(self, folder: str | Path) -> Path:
        import faiss

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / "index.faiss", lambda tmp: faiss.write_index(self.faiss_index, str(tmp)))
        meta = {"config": asdict(self.config), "kind": self.kind, "n": self.n, "width": self.width,
                "store": self.store_key}
        atomic_write_json(folder / "index.json", meta)
        return folder


def build_index(source: Store | sp.csr_matrix | np.ndarray, config: IndexConfig | None = None, *,
                save: bool = True, progress: bool = True) -> Index:
    """Build an index over a store's embeddings (saved to ``<store>/index/``) or over a matrix."""
    import faiss

    config = config or IndexConfig()
    if isinstance(source, Store) and source.mode == "layers":
        raise MonaError(f"store {source.path} holds per-layer activations (mode 'layers'); nothing to index")
    n, width = (source.n, source.n_features) if isinstance(source, Store) else source.shape
    kind = config.kind
    if kind == "auto":
        kind = "flat" if n * width * 4 <= config.flat_max_bytes else "ivf"
    if kind == "flat":
        index = faiss.IndexFlatIP(width)
    else:
        index = _ivf(source, n, width, config)
    bar = tqdm(total=n, desc=f"index {kind}", unit="vec", disable=not progress)
    for _, block in _blocks(source):
        index.add(_dense(normalize_rows(block)))
        bar.update(block.shape[0])
    bar.close()
    store_key = pool_fingerprint(source) if isinstance(source, Store) else None
    built = Index(index, config, kind, n, width, source, store_key)
    if save and isinstance(source, Store):
        built.save(source.path / INDEX_DIR)
    log.info("index: %s over %d vectors of width %d", kind, n, width)
    return built


def _ivf(source: Any, n: int, width: int, config: IndexConfig) -> Any:
    import faiss

    dims = min(config.dims, width)
    nlist = config.nlist or int(4 * math.sqrt(n))
    nlist = max(1, min(nlist, n // 39 if n >= 39 else 1))
    train: list[np.ndarray] = []
    taken = 0
    for _, block in _blocks(source):  # the first train_size vectors (stores are in input order)
        train.append(_dense(normalize_rows(block)))
        taken += block.shape[0]
        if taken >= config.train_size:
            break
    xt = np.concatenate(train)[: config.train_size]
    if dims < width:
        if config.projection == "pca" and width <= 4096:
            transform = faiss.PCAMatrix(width, dims)
        else:
            transform = faiss.RandomRotationMatrix(width, dims)
            transform.init(config.seed)
    quantizer = faiss.IndexFlatIP(dims)
    ivf = faiss.IndexIVFScalarQuantizer(quantizer, dims, nlist, faiss.ScalarQuantizer.QT_8bit,
                                        faiss.METRIC_INNER_PRODUCT)
    ivf.cp.seed = config.seed
    index = faiss.IndexPreTransform(transform, ivf) if dims < width else ivf
    index.train(xt)
    return index


def load_index(store: Store, config_check: bool = True) -> Index:
    """Load ``<store>/index/``; raises :class:`ArtifactMismatch` if it was built on a different store."""
    import faiss

    folder = store.path / INDEX_DIR
    if not (folder / "index.json").exists():
        raise MonaError(f"store {store.path} has no index; build one with mona.index.build_index(store)")
    meta = json.loads((folder / "index.json").read_text(encoding="utf-8"))
    if config_check and meta["store"] != pool_fingerprint(store):
        raise ArtifactMismatch(f"the index in {folder} was built on a different store; rebuild it")
    return Index(faiss.read_index(str(folder / "index.faiss")), IndexConfig(**meta["config"]), meta["kind"],
                 int(meta["n"]), int(meta["width"]), store, meta["store"])


def exact_search(codes: Any, queries: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force cosine top-``k`` (the reference the index is tested against)."""
    x = normalize_rows(sp.csr_matrix(codes, dtype=np.float32))
    q = normalize_rows(sp.csr_matrix(queries, dtype=np.float32))
    sims = np.asarray((q @ x.T).todense())
    k = min(k, x.shape[0])
    rows = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, rows, axis=1).astype(np.float32), rows
