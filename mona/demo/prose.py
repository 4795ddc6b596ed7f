"""Plain English prose for the SAE corpus: a public-domain novella shipped in reasoning-gym, fables from evals,
lm-eval's task READMEs and the standard library's long docstrings, cut into paragraph-aligned chunks."""

from __future__ import annotations

import ast
import functools
import json
import os
import re
import sysconfig
from collections.abc import Iterator
from pathlib import Path

from mona.demo.packages import package_file

CHUNK_CHARS = 1000  # prose chunks are about this long (at most twice)
STDLIB_SKIP = {"test", "tests", "idlelib", "lib2to3", "site-packages", "dist-packages", "turtledemo", "__pycache__"}


def chunks(text: str, target: int = CHUNK_CHARS) -> Iterator[str]:
    """Paragraph-aligned chunks of about ``target`` characters."""
    buf = ""
    for para in re.split(r"\n\s*\n", text):
        para = " ".join(para.split())
        if not para:
            continue
        buf = f"{buf}\n\n{para}" if buf else para
        if len(buf) >= target:
            yield buf[: 2 * target]
            buf = ""
    if len(buf) >= target // 4:
        yield buf


def markdown_prose(text: str) -> str:
    """The running text of a markdown file: no code blocks, tables, headings, lists, html, images or URLs."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith(("|", "#", "-", "*", "<", "!", "["))]
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", "\n".join(lines))
    return re.sub(r"https?://\S+", "", text)


def stdlib_docstrings(min_chars: int = 200) -> list[str]:
    """Distinct docstrings (modules, classes, functions) longer than ``min_chars`` of the standard library."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for folder, subdirs, names in os.walk(stdlib):
        subdirs[:] = sorted(d for d in subdirs if d not in STDLIB_SKIP)
        files += [Path(folder) / n for n in names if n.endswith(".py")]
    docs: dict[str, None] = {}
    for file in sorted(files):
        try:
            tree = ast.parse(file.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node)
                if doc and len(doc) > min_chars:
                    docs[doc] = None
    return list(docs)


@functools.lru_cache(maxsize=1)
def prose_texts() -> dict[str, list[str]]:
    """Source name -> distinct prose chunks, in a fixed order."""
    out: dict[str, list[str]] = {}
    novella = package_file("reasoning_gym", "data/in_the_year_2889.txt").read_text(encoding="utf-8")
    out["verne"] = list(chunks(novella))
    readmes = sorted(package_file("lm_eval", "tasks").rglob("README.md"))
    out["lm_eval_readmes"] = [c for p in readmes for c in chunks(markdown_prose(p.read_text(errors="replace")))
                              if sum(ch.isascii() for ch in c) > 0.97 * len(c)]
    fables = package_file("evals", "registry/data/parable-to-moral-match/parable-to-moral-match-en.jsonl")
    stories = {json.loads(line)["input"][-1]["content"].split("\nWhich moral")[0].strip()
               for line in fables.open(encoding="utf-8") if line.strip()}
    out["fables"] = sorted(s for s in stories if len(s) > 200)
    out["stdlib_docstrings"] = [c for d in stdlib_docstrings() for c in chunks(d)]
    return {k: list(dict.fromkeys(v)) for k, v in out.items()}
