"""Nearest-neighbour indexes (FAISS) over the vectors selection compares, with exact scores on the vectors.

Similarity is cosine: inner product of L2-normalised vectors. Two index kinds:

* ``flat``: ``IndexFlatIP`` over the normalised (densified) vectors: exact; ``auto`` picks it while
  ``n * width * 4`` bytes fit under ``flat_max_bytes``.
* ``ivf``: above that, the normalised vectors are projected to at most 1024 dimensions (a count sketch on the
  sparse rows for wide codes, the heaviest features a dimension each; PCA or a random rotation for dense ones)
  and indexed with IVF + 8-bit scalar quantisation. The index only proposes candidates (``k * rerank`` per
  query, or pairs above ``threshold - margin`` for range searches), re-ranked by their exact cosine on the vectors
  themselves, so returned scores are always exact and only recall is approximate.

An index is built from a :class:`Vectors` source, streamed block by block (a store's memory-mapped shards are
never loaded whole), and saved beside its store as ``<store>/index/<space>/`` (``index.faiss`` +
``index.json``: kind, config, store fingerprint, the space it indexes, checksum). :func:`index_for` loads it,
or rebuilds it with a logged reason when the store changed, it indexes another space, or the file is corrupted.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import scipy.sparse as sp
from jaxtyping import Float
from tqdm.auto import tqdm

from mona.errors import ArtifactMismatch, MonaError
from mona.io import atomic_write, atomic_write_json, json_hash, sha256_file
from mona.store import Store, pool_fingerprint
from mona.vectors import Vectors, as_vectors, count_sketch, dense, normalize_rows, row_dots, sketch

log = logging.getLogger(__name__)

IndexKind = Literal["auto", "flat", "ivf"]
Projection = Literal["random", "pca"]
INDEX_DIR = "index"
CODES_SPACE: dict[str, Any] = {"vectors": "codes"}
"""The space ``mona embed --index`` indexes: the store's own vectors (SAE codes or dense vectors), unweighted."""
SEARCH_CANDIDATES = 1 << 20
"""``ivf`` k-NN searches propose at most about this many candidate rows per block of queries (their exact vectors
are gathered to re-rank them), so memory does not grow with ``k · rerank``."""
SKETCH = "heavy-features"  # ivf over sparse codes: count_sketch with feature mass; others are rebuilt on use
HOLD_MAX_BYTES = 4 << 30
"""Range searches over a store hold its normalised vectors in memory up to this size (else rows are gathered
from the shards' memory maps per block of queries)."""
PAIRS_CHUNK = 131_072
"""Range searches verify their candidate pairs this many at a time (two gathered rows each: ~400 MB for pooled
codes with ~200 non-zeros), so memory does not grow with how many candidates a block of queries gets."""


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
    """``ivf``: ``random`` projection (any width) or ``pca`` (trained; dense vectors of width <= 4096)."""
    nlist: int | None = None
    """``ivf``: number of inverted lists; default about sqrt(n)."""
    nprobe: int = 32
    """``ivf``: lists visited per query."""
    rerank: int = 10
    """``ivf``: candidates per query = k · rerank, re-ranked exactly on the vectors."""
    margin: float = 0.05
    """``ivf`` range searches: candidates down to ``threshold - margin`` (approximate scores) are checked exactly."""
    train_size: int = 50_000
    """``ivf``: at most this many vectors train the projection and the coarse quantiser."""
    recall_queries: int = 16
    """``ivf``: queries whose exact top-k is computed by brute force to measure recall (0 disables)."""
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
        if not 0.0 <= self.margin < 1.0:
            raise MonaError(f"index margin must be in [0, 1); got {self.margin}")


@dataclass
class Index:
    """A FAISS index over one set of row vectors, scored exactly on them."""

    faiss_index: Any
    config: IndexConfig
    kind: str
    n: int
    width: int
    vectors: Vectors | None = None
    """Where exact vectors are read for re-ranking."""
    store_key: str | None = None
    space: dict[str, Any] = field(default_factory=lambda: dict(CODES_SPACE))
    projection: np.ndarray | None = None
    """``ivf`` over wide sparse vectors: (2, width) the count-sketch (target dimension, sign of every feature)
    applied before the index (:func:`sketch`)."""
    info: dict[str, Any] = field(default_factory=dict)
    """How it was obtained (built or loaded, seconds, recall), for ``selection.json``."""
    held: Any = field(default=None, repr=False)
    """Range searches over a store: its normalised vectors, read once and reused by every later call."""
    pairs_nprobe: dict[float, int] = field(default_factory=dict, repr=False)
    """Range searches: the calibrated ``nprobe`` per threshold, measured once per index object."""

    def prepare(self, x: Any) -> np.ndarray:
        """Normalised vectors as the FAISS index takes them (projected for ``ivf`` over wide sparse codes)."""
        x = normalize_rows(x)
        if self.projection is not None:
            return sketch(x, self.projection, min(self.config.dims, self.width))
        return dense(x)

    def hold(self) -> bool:
        """Keep a store's normalised vectors in memory for exact re-ranking when they take at most
        :data:`HOLD_MAX_BYTES` (candidates are scattered: gathered from memory, the store read once per index)."""
        if self.held is None and isinstance(getattr(self.vectors, "source", None), Store) \
                and self.vectors.nbytes() <= HOLD_MAX_BYTES:
            self.held = normalize_rows(self.vectors.all())
        return self.held is not None

    def _exact(self, rows: np.ndarray) -> Any:
        if self.held is not None:
            return self.held[rows]
        if self.vectors is None:
            raise MonaError("this index has no vectors attached for exact re-ranking")
        return normalize_rows(self.vectors.rows(rows))

    def _ivf(self) -> Any:
        import faiss

        ivf = faiss.extract_index_ivf(self.faiss_index)
        ivf.nprobe = min(self.config.nprobe, ivf.nlist)
        return ivf

    def search(self, queries: Any, k: int, among: np.ndarray | None = None,
               progress: bool = False) -> tuple[Float[np.ndarray, "q k"], np.ndarray]:
        """Top-``k`` rows by cosine for each query (CSR, dense array or Store): (scores, rows), row -1 = none.
        ``among``: only these rows are returned, given as row numbers or as an (n,) bool mask (a FAISS ID selector
        restricts the search to them)."""
        if isinstance(queries, Store):
            queries = queries.codes()
        if queries.shape[1] != self.width:
            raise ArtifactMismatch(f"queries have width {queries.shape[1]}, the index holds width {self.width}")
        if int(k) > self.n:
            raise MonaError(f"k={k} is larger than the indexed vectors ({self.n})")
        k = int(k)
        q = normalize_rows(queries if sp.issparse(queries) else np.asarray(queries, dtype=np.float32))
        params = self._restrict(among)
        if self.kind == "flat":
            return self.faiss_index.search(dense(q), k, params=params)
        want = min(self.n, k * self.config.rerank)
        scores = np.full((q.shape[0], k), -np.inf, dtype=np.float32)
        rows = np.full((q.shape[0], k), -1, dtype=np.int64)
        bar = tqdm(total=q.shape[0], desc="search", unit="query", disable=not progress or q.shape[0] < 20_000)
        step = int(np.clip(SEARCH_CANDIDATES // want, 1, 256))  # queries per block: bounded candidate rows
        for start in range(0, q.shape[0], step):
            block = q[start : start + step]
            bar.update(block.shape[0])
            _, cand = self.faiss_index.search(self.prepare(block), want, params=params)
            qi, ci = np.nonzero(cand >= 0)
            exact = np.full(cand.shape, -np.inf, np.float32)
            for c0 in range(0, len(qi), PAIRS_CHUNK):  # all candidate pairs of the block, a chunk at a time
                bq, bc = qi[c0 : c0 + PAIRS_CHUNK], ci[c0 : c0 + PAIRS_CHUNK]
                uniq, inverse = np.unique(cand[bq, bc], return_inverse=True)  # each candidate read once per chunk
                exact[bq, bc] = row_dots(block[bq], self._exact(uniq)[inverse])
            order = np.lexsort((np.where(cand >= 0, cand, np.iinfo(np.int64).max), -exact), axis=-1)[:, :k]
            top_s, top_r = np.take_along_axis(exact, order, 1), np.take_along_axis(cand, order, 1)
            found = np.isfinite(top_s)
            scores[start : start + block.shape[0], : order.shape[1]] = np.where(found, top_s, -np.inf)
            rows[start : start + block.shape[0], : order.shape[1]] = np.where(found, top_r, -1)
        bar.close()
        return scores, rows

    def _restrict(self, among: np.ndarray | None) -> Any:
        """FAISS search parameters limiting results to the rows ``among`` (and, for ``ivf``, the configured
        ``nprobe``); None when unrestricted and flat."""
        import faiss

        if among is None:
            sel = None
        elif np.asarray(among).dtype == bool:  # a mask: one bit per row, no hash set to build
            bits = np.packbits(np.asarray(among), bitorder="little")
            sel = faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits))
            sel._bits = bits  # the bitmap must outlive the selector
        else:
            sel = faiss.IDSelectorBatch(np.ascontiguousarray(among, np.int64))
        if self.kind == "flat":
            return None if sel is None else faiss.SearchParameters(sel=sel)
        params = faiss.SearchParametersIVF(nprobe=int(self._ivf().nprobe))
        if sel is not None:
            params.sel = sel
        params._keep = sel  # the selector must outlive the parameters that point at it
        return params

    def pairs(self, threshold: float, rows: np.ndarray | None = None, progress: bool = True,
              nprobe: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every pair ``(i, j)``, ``i`` in ``rows`` (default all), ``j != i``, with exact cosine >= ``threshold``:
        (i, j, cosine). ``ivf`` finds candidates above ``threshold - margin`` on approximate scores in the
        ``nprobe`` lists nearest each row (pairs this similar share a list or sit in neighbouring ones)."""
        if self.vectors is None:
            raise MonaError("this index has no vectors attached for range searches")
        rows = np.arange(self.n) if rows is None else np.asarray(rows, np.int64)
        radius = threshold if self.kind == "flat" else threshold - self.config.margin
        held = self.held if self.hold() else None
        exact = self._exact
        if self.kind == "ivf":
            key = round(float(threshold), 6)
            if key not in self.pairs_nprobe:  # calibrated on the first call's rows, reused by later calls
                self.pairs_nprobe[key] = self._calibrate_pairs(threshold, radius, rows, nprobe, exact, held)
            nprobe = self.pairs_nprobe[key]
            self._ivf().nprobe = nprobe
        out_i, out_j, out_s = [], [], []
        bar = tqdm(total=len(rows), desc="neighbours", unit="row", disable=not progress or len(rows) < 20_000)
        step = 1024
        for a in range(0, len(rows), step):
            r = rows[a : a + step]
            Q = exact(r)
            lims, _, cand = self.faiss_index.range_search(self.prepare(Q), float(radius) - 1e-6)
            qi = np.repeat(np.arange(len(r)), np.diff(lims).astype(np.int64))
            keep = cand != r[qi]
            qi, cand = qi[keep], cand[keep]
            for c0 in range(0, len(cand), PAIRS_CHUNK):  # bounded memory however many candidates a block has
                cq, cc = qi[c0 : c0 + PAIRS_CHUNK], cand[c0 : c0 + PAIRS_CHUNK]
                uniq, inverse = np.unique(cc, return_inverse=True)  # each candidate read once per chunk
                sims = row_dots(Q[cq], exact(uniq)[inverse])
                ok = sims >= threshold
                out_i.append(r[cq[ok]])
                out_j.append(cc[ok])
                out_s.append(sims[ok])
            bar.update(len(r))
        bar.close()
        if not out_i:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
        return np.concatenate(out_i), np.concatenate(out_j).astype(np.int64), np.concatenate(out_s)

    def _calibrate_pairs(self, threshold: float, radius: float, rows: np.ndarray, nprobe: int,
                         exact: Any, held: Any = None, target: float = 0.95) -> int:
        """The ``nprobe`` at which the range search finds at least ``target`` of the exact pairs of sampled query
        rows (doubling from ``nprobe``; all lists at most); the recall reached is kept in ``info``."""
        ivf = self._ivf()
        count = min(len(rows), 16 * self.config.recall_queries)
        if not count:
            return min(nprobe, ivf.nlist)
        pick = rows[np.unique(np.linspace(0, len(rows) - 1, count).astype(np.int64))]
        Q = exact(pick)
        Qt = Q.T.tocsr() if sp.issparse(Q) else np.ascontiguousarray(Q.T)
        truth: list[np.ndarray] = []  # pairs encoded as query row * n + pool row
        step = self.vectors.block
        blocks = (((a, held[a : a + step]) for a in range(0, held.shape[0], step)) if held is not None
                  else self.vectors.blocks())  # the vectors already in memory are not read again
        for a, block in blocks:
            S = normalize_rows(block) @ Qt
            S = S.toarray() if sp.issparse(S) else np.asarray(S)
            r, q = np.nonzero(S >= threshold)
            keep = a + r != pick[q]
            truth.append(pick[q[keep]] * self.n + a + r[keep])
        true = np.unique(np.concatenate(truth)) if truth else np.zeros(0, np.int64)
        nprobe = min(nprobe, ivf.nlist)
        while True:
            ivf.nprobe = nprobe
            lims, _, cand = self.faiss_index.range_search(self.prepare(Q), float(radius) - 1e-6)
            found = np.repeat(pick, np.diff(lims).astype(np.int64)) * self.n + cand
            recall = float(np.isin(true, found).mean()) if len(true) else 1.0
            if recall >= target or nprobe >= ivf.nlist:
                break
            nprobe = min(2 * nprobe, ivf.nlist)
        self.info.update(pairs_nprobe=nprobe, pairs_recall=round(recall, 4), pairs_sampled=len(pick))
        if recall < target:
            log.warning("range search recall %.2f < %.2f on %d sampled rows even with every list probed",
                        recall, target, len(pick))
        return nprobe

    def lists(self) -> np.ndarray:
        """``ivf``: (n,) the inverted list of every row."""
        import faiss

        ivf = self._ivf()
        owner = np.full(self.n, -1, np.int64)
        inv = ivf.invlists
        for lst in range(ivf.nlist):
            size = inv.list_size(lst)
            if size:
                ids = faiss.rev_swig_ptr(inv.get_ids(lst), size).copy()
                owner[ids] = lst
        return owner

    def reduced(self, x: Any) -> np.ndarray:
        """``ivf``: (q, d) float32, the vectors as its inverted lists and coarse centroids see them."""
        import faiss

        x = np.ascontiguousarray(self.prepare(x), np.float32)
        pre = isinstance(self.faiss_index, faiss.IndexPreTransform)
        for k in range(self.faiss_index.chain.size() if pre else 0):
            x = faiss.downcast_VectorTransform(self.faiss_index.chain.at(k)).apply(x)
        return x

    def probe(self, queries: Any, nprobe: int) -> np.ndarray:  # ivf: (q, nprobe) the lists nearest each query
        return self._ivf().quantizer.search(self.reduced(queries), nprobe)[1]

    def save(self, folder: str | Path) -> Path:
        import faiss

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / "index.faiss", lambda tmp: faiss.write_index(self.faiss_index, str(tmp)))
        if self.projection is not None:
            atomic_write(folder / "projection.npy", lambda tmp: _save_npy(tmp, self.projection))
        meta = {"config": asdict(self.config), "kind": self.kind, "n": self.n, "width": self.width,
                "store": self.store_key, "space": self.space, "sha256": sha256_file(folder / "index.faiss"),
                "projection": self.projection is not None, "recall": self.info.get("recall"),
                "sketch": SKETCH if self.projection is not None else None}
        atomic_write_json(folder / "index.json", meta)
        return folder


def _save_npy(tmp: Path, a: np.ndarray) -> None:
    with open(tmp, "wb") as handle:
        np.save(handle, a, allow_pickle=False)



def choose_kind(n: int, width: int, config: IndexConfig) -> str:
    if config.kind != "auto":
        return config.kind
    return "flat" if n * width * 4 <= config.flat_max_bytes else "ivf"


def build_index(source: Any, config: IndexConfig | None = None, *, save: bool = True, progress: bool = True,
                space: dict[str, Any] | None = None, kind: str | None = None, store: Store | None = None) -> Index:
    """Build an index over a store's vectors, a matrix or :class:`Vectors` (``space`` of ``store``, the store
    itself by default); with a store it is saved as ``<store>/index/<space>/``."""
    import time

    import faiss

    t0 = time.perf_counter()
    config = config or IndexConfig()
    if isinstance(source, Store) and source.mode == "layers":
        raise MonaError(f"store {source.path} holds per-layer activations (mode 'layers'); nothing to index")
    vectors = as_vectors(source)
    n, width = vectors.n, vectors.width
    kind = kind or choose_kind(n, width, config)
    if n < 1:
        raise MonaError("cannot index an empty set of vectors")
    projection = None
    if kind == "flat":
        index = faiss.IndexFlatIP(width)
    else:
        index, projection = _ivf(vectors, n, width, config)
    built = Index(index, config, kind, n, width, vectors, None, dict(space or CODES_SPACE), projection)
    bar = tqdm(total=n, desc=f"index {kind}", unit="vec", disable=not progress)
    for _, block in vectors.blocks():
        index.add(built.prepare(block))
        bar.update(block.shape[0])
    bar.close()
    store = store if store is not None else vectors.source if isinstance(vectors.source, Store) else None
    built.store_key = pool_fingerprint(store) if store is not None else None
    built.info = {"kind": kind, "n": n, "width": width, "built": True, "build_s": round(time.perf_counter() - t0, 3)}
    if kind == "ivf":
        built.info.update(nlist=int(faiss.extract_index_ivf(index).nlist), nprobe=config.nprobe,
                          rerank=config.rerank, dims=int(min(config.dims, width)))
        if projection is not None:
            built.info["sketch"] = SKETCH
    if save and store is not None:
        built.save(index_folder(store, built.space))
    log.info("index: %s over %d vectors of width %d in %.1f s", kind, n, width, built.info["build_s"])
    return built


def empty_ivf(vectors: Vectors, expected: int, config: IndexConfig | None = None) -> Index:
    """An empty ``ivf`` index trained on a sample of ``vectors`` (lists for ``expected`` rows): for a growing subset."""
    config = config or IndexConfig()
    index, projection = _ivf(vectors, max(1, expected), vectors.width, config)
    import faiss

    out = Index(index, config, "ivf", 0, vectors.width, None, projection=projection)
    out.info = {"kind": "ivf", "nlist": int(faiss.extract_index_ivf(index).nlist), "built": True}
    return out


def _ivf(vectors: Vectors, n: int, width: int, config: IndexConfig) -> tuple[Any, np.ndarray | None]:
    import faiss

    dims = min(config.dims, width)
    nlist = config.nlist or int(math.sqrt(n))
    nlist = max(1, min(nlist, n // 39 if n >= 39 else 1))
    train: list[Any] = []
    taken = 0
    for _, block in vectors.blocks():  # the first train_size vectors (stores are in input order)
        train.append(normalize_rows(block))
        taken += block.shape[0]
        if taken >= config.train_size:
            break
    projection = None
    if vectors.sparse and dims < width:  # sketch the sparse rows directly (never densify 16k-wide codes)
        sample = sp.vstack(train, format="csr")[: config.train_size]
        mass = np.bincount(sample.indices, np.square(sample.data, dtype=np.float64), minlength=width)
        projection = count_sketch(width, dims, config.seed, mass)  # the heaviest features get their own dims
    probe = Index(None, config, "ivf", n, width, vectors, projection=projection)
    xt = np.concatenate([probe.prepare(b) for b in train])[: config.train_size]
    in_dims = xt.shape[1]
    transform = None
    if in_dims > dims:
        if config.projection == "pca" and in_dims <= 4096:
            transform = faiss.PCAMatrix(in_dims, dims)
        else:
            transform = faiss.RandomRotationMatrix(in_dims, dims)
            transform.init(config.seed)
    quantizer = faiss.IndexFlatIP(dims)
    ivf = faiss.IndexIVFScalarQuantizer(quantizer, dims, nlist, faiss.ScalarQuantizer.QT_8bit,
                                        faiss.METRIC_INNER_PRODUCT)
    ivf.cp.seed = config.seed
    ivf.cp.niter = 10
    index = faiss.IndexPreTransform(transform, ivf) if transform is not None else ivf
    index.train(xt)
    return index, projection


def index_folder(store: Store, space: dict[str, Any] | None = None) -> Path:
    space = dict(space or CODES_SPACE)
    name = str(space.get("vectors", "codes"))
    if space != CODES_SPACE:
        name += "-" + json_hash(space, short=8)
    return store.path / INDEX_DIR / name


def load_index(store: Store, space: dict[str, Any] | None = None, config_check: bool = True,
               vectors: Vectors | None = None) -> Index:
    """Load ``<store>/index/<space>/``; one-line errors when it is missing, corrupted, built on a different
    store (:class:`ArtifactMismatch`) or over another space."""
    import faiss

    space = dict(space or CODES_SPACE)
    folder = index_folder(store, space)
    if not (folder / "index.json").exists():
        raise MonaError(f"store {store.path} has no index in {folder.name}; build one with mona.index.build_index")
    try:
        meta = json.loads((folder / "index.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise MonaError(f"the index in {folder} is corrupted (unreadable index.json); rebuild it") from None
    if config_check and meta.get("store") != pool_fingerprint(store):
        raise ArtifactMismatch(f"the index in {folder} was built on a different store; rebuild it")
    if meta.get("space", CODES_SPACE) != space:
        raise ArtifactMismatch(f"the index in {folder} indexes {meta.get('space')}, not {space}; rebuild it")
    path = folder / "index.faiss"
    if not path.exists() or (meta.get("sha256") and sha256_file(path) != meta["sha256"]):
        raise MonaError(f"the index in {folder} is corrupted (index.faiss missing or not matching its checksum)")
    try:
        index = faiss.read_index(str(path))
    except RuntimeError:
        raise MonaError(f"the index in {folder} is corrupted (FAISS cannot read index.faiss); rebuild it") from None
    projection = None
    if meta.get("projection"):
        projection = np.load(folder / "projection.npy", allow_pickle=False)
    if index.ntotal != int(meta["n"]) or int(meta["n"]) != store.n:
        raise MonaError(f"the index in {folder} holds {index.ntotal} vectors, the store {store.n}; rebuild it")
    out = Index(index, IndexConfig(**meta["config"]), meta["kind"], int(meta["n"]), int(meta["width"]),
                vectors or Vectors(store), meta["store"], space, projection)
    out.info = {"kind": out.kind, "n": out.n, "width": out.width, "built": False, "recall": meta.get("recall")}
    if projection is not None:
        out.info["sketch"] = meta.get("sketch")
    if out.kind == "ivf":
        out.info.update(nlist=int(faiss.extract_index_ivf(index).nlist), nprobe=out.config.nprobe,
                        rerank=out.config.rerank)
    return out


def index_for(store: Store | None, vectors: Vectors, space: dict[str, Any], config: IndexConfig,
              kind: str, progress: bool = True) -> Index:
    """The index over ``vectors`` (the ``space`` of ``store``): loaded from beside the store when it is there and
    still valid, else built (and saved beside the store); every rebuild logs why."""
    if store is not None:
        folder = index_folder(store, space)
        if (folder / "index.json").exists():
            try:
                index = load_index(store, space, vectors=vectors)
                if index.projection is not None and index.info.get("sketch") != SKETCH:
                    raise MonaError("it was built with the plain count sketch of earlier versions")
                if index.kind == kind:
                    index.config.nprobe, index.config.rerank = config.nprobe, config.rerank
                    if kind == "ivf":
                        index.info.update(nprobe=config.nprobe, rerank=config.rerank)
                    return index
                log.warning("rebuilding the index in %s: it is %s, %s was asked for", folder, index.kind, kind)
            except MonaError as exc:
                log.warning("rebuilding the index in %s: %s", folder, exc)
    return build_index(vectors, config, progress=progress, space=space, kind=kind, store=store)
