"""The SAE training corpus: plain English prose mixed with instruction samples in Gemma's turn format.

The instruction half comes from the fixed hash partition of the pool's sources (MMLU, codeio, evals) that the demo
pool never uses, plus gsm_symbolic problems from a separate random stream; it never touches the targets.
"""

from __future__ import annotations

import json
import logging
import random
from itertools import repeat

from mona.data import gemma_turns
from mona.demo.cache import DATA_VERSION, cached, data_dir, write
from mona.demo.domains import DOMAIN_SHARES
from mona.demo.pool import draw, pool_sources
from mona.demo.prose import prose_texts
from mona.demo.records import round_robin
from mona.errors import DataError

log = logging.getLogger(__name__)


def gemma_chat(messages: list[dict[str, str]]) -> str:
    """Chat messages in Gemma's turn format, as :func:`mona.data.gemma_turns` lays them out for the default model.

    Two differences in what goes in, kept so the corpus stays as it was built: several system messages in a row
    are joined with a blank line (``gemma_turns`` keeps only the last), and any role other than ``system`` and
    ``assistant`` is a user turn (``gemma_turns`` makes it a model turn).
    """
    merged: list[dict[str, str]] = []
    for turn in messages:
        role = turn["role"] if turn["role"] in ("system", "assistant") else "user"
        if role == "system" and merged and merged[-1]["role"] == "system":
            joined = merged[-1]["content"]
            merged[-1] = {"role": "system", "content": f"{joined}\n\n{turn['content']}" if joined else turn["content"]}
        else:
            merged.append({"role": role, "content": turn["content"]})
    return gemma_turns(merged)[0]


def _prose_part(n_prose: int, rng: random.Random) -> list[dict]:
    """``n_prose`` prose chunks (fewer if there are not that many), the prose sources taking turns."""
    prose = {k: iter(rng.sample(v, len(v))) for k, v in prose_texts().items()}
    streams = {k: zip(repeat(k), zip(repeat(k), v)) for k, v in prose.items()}  # items: (key, (source, text))
    return [{"text": t, "source": f"prose:{k}"}
            for (k, t), _ in zip(round_robin(streams, rng), range(n_prose), strict=False)]


def build_sae_corpus(n_texts: int = 6000, seed: int = 0, *, prose_share: float = 0.5, force: bool = False) -> list[str]:
    """Texts for SAE training: plain English prose mixed with instruction samples in Gemma's turn format.

    Cached as jsonl (``{"text", "source"}`` per line, plus ``domain`` for instruction texts) under
    ``mona_home()/data``.
    """
    if not 0.0 <= prose_share <= 1.0:
        raise DataError(f"prose_share must be in [0, 1], got {prose_share}")
    params = {"kind": "sae_corpus", "n_texts": n_texts, "seed": seed, "prose_share": prose_share,
              "version": DATA_VERSION}
    path = data_dir() / f"sae_corpus-n{n_texts}-seed{seed}-p{prose_share:g}-v{DATA_VERSION}.jsonl"
    if force or not cached(path, params):
        rng = random.Random(seed)
        n_prose = round(n_texts * prose_share)
        texts = _prose_part(n_prose, rng)
        instr = draw(pool_sources(seed, "sae"), DOMAIN_SHARES, n_texts - len(texts), seed)
        if len(texts) < n_prose:
            log.warning("only %d distinct prose texts available; the rest is instruction text", len(texts))
        texts += [{"text": gemma_chat(r["messages"]), "source": r["source"], "domain": r["domain"]} for r in instr]
        texts = list({t["text"]: t for t in texts}.values())
        rng.shuffle(texts)
        write(path, texts, params)
    return [json.loads(line)["text"] for line in path.open(encoding="utf-8")]
