"""Instruction samples: reading them from files or objects, normalising formats, rendering to model text.

Supported sources: ``.jsonl``, ``.json`` (a list of records, or ``{"data": [...]}``), ``.parquet``, a Hugging
Face ``datasets.Dataset``, or a list of dicts. Record formats, auto-detected from the first record's fields or
named by the user:

* ``alpaca``: ``instruction`` (+ optional ``input``, optional ``system``) and ``output``
* ``chat``: ``messages`` (or ``conversations``) — a list of ``{"role", "content"}`` (ShareGPT's ``from``/``value``
  is accepted too)
* ``prompt_response``: ``prompt`` and ``response`` (also ``question``/``answer``, ``prompt``/``completion``)
* ``text``: a single ``text`` field, rendered as is (the whole text counts as the response span)

Every sample gets a stable id: the record's ``id`` field when present, else the first 16 hex digits of the
sha256 of its normalised content — the same record always gets the same id.

Rendering (:func:`render`) uses the tokenizer's chat template when it has one; otherwise Gemma's turn format::

    <start_of_turn>user
    {system}\\n\\n{prompt}<end_of_turn>
    <start_of_turn>model
    {response}<end_of_turn>

Each rendered sample keeps the character offset where the response starts, so later stages can pool over the
prompt, the response, or both.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mona.errors import DataError

Format = Literal["auto", "alpaca", "chat", "prompt_response", "text"]
FORMATS: tuple[str, ...] = ("alpaca", "chat", "prompt_response", "text")

_ROLE_ALIASES = {
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "model": "assistant",
    "bot": "assistant",
    "system": "system",
}
_PR_KEYS = (("prompt", "response"), ("question", "answer"), ("prompt", "completion"), ("input", "output"))
_EXPECTED = (
    "expected one of the formats: alpaca (instruction, output), chat (messages: [{role, content}]), "
    "prompt_response (prompt, response), text (text)"
)


@dataclass
class Sample:
    """One instruction sample, normalised to chat turns, with its original record kept untouched."""

    id: str
    messages: list[dict[str, str]]
    """Chat turns ``{"role": "system" | "user" | "assistant", "content": str}``; empty for plain text."""
    text: str | None = None
    """The text of a plain-text sample (``None`` for instruction samples)."""
    record: dict[str, Any] = field(default_factory=dict)
    """The original fields, written back unchanged by selection outputs."""

    @property
    def prompt(self) -> str:
        """Everything before the final assistant turn, turns joined by blank lines."""
        turns = self.messages[:-1] if self.messages and self.messages[-1]["role"] == "assistant" else self.messages
        return "\n\n".join(t["content"] for t in turns)

    @property
    def response(self) -> str:
        """The final assistant turn (the whole text for plain-text samples, ``""`` when there is none)."""
        if self.text is not None:
            return self.text
        if self.messages and self.messages[-1]["role"] == "assistant":
            return self.messages[-1]["content"]
        return ""

    @property
    def source(self) -> str | None:
        """A source or domain label from the record (``source``, else ``domain``, else ``category``)."""
        for key in ("source", "domain", "category"):
            if self.record.get(key) is not None:
                return str(self.record[key])
        return None

    @property
    def plain(self) -> str:
        """Prompt and response as plain text (for lexical baselines and sentence embedders)."""
        return self.text if self.text is not None else f"{self.prompt}\n\n{self.response}".strip()


# --------------------------------------------------------------------------------------------------------
# Reading records
# --------------------------------------------------------------------------------------------------------


def _iter_jsonl(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: not valid JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object per line, got {type(record).__name__}")
            yield f"{path}:{lineno}", record


def _iter_json(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if isinstance(data, dict):
        data = data.get("data", data.get("samples"))
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of records (or an object with a 'data' list)")
    for i, record in enumerate(data):
        if not isinstance(record, dict):
            raise DataError(f"{path}: record {i}: expected an object, got {type(record).__name__}")
        yield f"{path}[{i}]", record


def _iter_parquet(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise DataError(f"{path}: not a readable parquet file ({exc})") from None
    row = 0
    for batch in table.iter_batches(batch_size=4096):
        for record in batch.to_pylist():
            yield f"{path} row {row}", record
            row += 1


def iter_records(source: str | Path | Iterable[dict[str, Any]] | Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(location, record)`` pairs; location is ``file:line`` (or row) for error messages."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise DataError(f"{path}: no such file")
        suffix = path.suffix.lower()
        if suffix in (".jsonl", ".ndjson"):
            yield from _iter_jsonl(path)
        elif suffix == ".json":
            yield from _iter_json(path)
        elif suffix == ".parquet":
            yield from _iter_parquet(path)
        else:
            raise DataError(f"{path}: unsupported file type {suffix!r}; expected .jsonl, .json or .parquet")
        return
    for i, record in enumerate(source):
        if not isinstance(record, dict):
            raise DataError(f"record {i}: expected a dict, got {type(record).__name__}")
        yield f"record {i}", record


# --------------------------------------------------------------------------------------------------------
# Normalising formats
# --------------------------------------------------------------------------------------------------------


def detect_format(record: dict[str, Any]) -> str:
    """The format a record is in, from its fields; raises :class:`DataError` listing the formats expected."""
    if "messages" in record or "conversations" in record:
        return "chat"
    if "instruction" in record and "output" in record:
        return "alpaca"
    if any(p in record and r in record for p, r in _PR_KEYS):
        return "prompt_response"
    if "text" in record:
        return "text"
    raise DataError(f"cannot tell the format from fields {sorted(record)}; {_EXPECTED}")


def _str(value: Any, where: str, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataError(f"{where}: field {name!r} must be a string, got {type(value).__name__}")
    return value


def _messages(record: dict[str, Any], fmt: str, where: str) -> tuple[list[dict[str, str]], str | None]:
    if fmt == "chat":
        turns = record.get("messages", record.get("conversations"))
        if not isinstance(turns, list) or not turns:
            raise DataError(f"{where}: 'messages' must be a non-empty list of {{role, content}} objects")
        out = []
        for j, turn in enumerate(turns):
            if not isinstance(turn, dict):
                raise DataError(f"{where}: message {j} must be an object with role and content")
            role = turn.get("role", turn.get("from"))
            content = turn.get("content", turn.get("value"))
            if role not in _ROLE_ALIASES:
                raise DataError(f"{where}: message {j} has role {role!r}; expected user, assistant or system")
            out.append({"role": _ROLE_ALIASES[role], "content": _str(content, where, f"messages[{j}].content")})
        return out, None
    if fmt == "alpaca":
        if "instruction" not in record or "output" not in record:
            raise DataError(f"{where}: alpaca format needs 'instruction' and 'output' fields; got {sorted(record)}")
        prompt = _str(record["instruction"], where, "instruction")
        extra = _str(record.get("input"), where, "input")
        if extra.strip():
            prompt = f"{prompt}\n\n{extra}"
        out = [{"role": "system", "content": _str(record["system"], where, "system")}] if record.get("system") else []
        out += [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": _str(record["output"], where, "output")},
        ]
        return out, None
    if fmt == "prompt_response":
        for p, r in _PR_KEYS:
            if p in record and r in record:
                return [
                    {"role": "user", "content": _str(record[p], where, p)},
                    {"role": "assistant", "content": _str(record[r], where, r)},
                ], None
        raise DataError(f"{where}: prompt_response format needs 'prompt' and 'response' fields; got {sorted(record)}")
    if fmt == "text":
        if "text" not in record:
            raise DataError(f"{where}: text format needs a 'text' field; got {sorted(record)}")
        return [], _str(record["text"], where, "text")
    raise DataError(f"unknown format {fmt!r}; expected auto or one of {', '.join(FORMATS)}")


def content_id(messages: list[dict[str, str]], text: str | None) -> str:
    """Stable id from normalised content: 16 hex digits of sha256."""
    payload = json.dumps({"messages": messages, "text": text}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def to_sample(record: dict[str, Any], fmt: str = "auto", *, where: str = "record", id_field: str = "id") -> Sample:
    """Normalise one record to a :class:`Sample`."""
    if fmt == "auto":
        try:
            fmt = detect_format(record)
        except DataError as exc:
            raise DataError(f"{where}: {exc}") from None
    messages, text = _messages(record, fmt, where)
    if not any(t["content"].strip() for t in messages) and not (text or "").strip():
        raise DataError(f"{where}: sample is empty (no text in any field)")
    sample_id = record.get(id_field)
    sample_id = str(sample_id) if sample_id is not None else content_id(messages, text)
    return Sample(id=sample_id, messages=messages, text=text, record=dict(record))


def iter_samples(
    source: str | Path | Iterable[dict[str, Any]] | Any,
    format: Format = "auto",
    *,
    id_field: str = "id",
) -> Iterator[Sample]:
    """Stream samples from a file, a ``datasets.Dataset`` or a list of dicts.

    With ``format="auto"`` the format is detected on the first record and then required of every record, so
    a file that mixes formats fails on the first odd line with its location.
    """
    fmt = format
    for where, record in iter_records(source):
        if fmt == "auto":
            try:
                fmt = detect_format(record)
            except DataError as exc:
                raise DataError(f"{where}: {exc}") from None
        yield to_sample(record, fmt, where=where, id_field=id_field)


def load_samples(
    source: str | Path | Iterable[dict[str, Any]] | Any,
    format: Format = "auto",
    *,
    id_field: str = "id",
    limit: int | None = None,
) -> list[Sample]:
    """Read all samples (at most ``limit``); raises :class:`DataError` for empty input or duplicate ids."""
    samples: list[Sample] = []
    seen: dict[str, int] = {}
    for sample in iter_samples(source, format, id_field=id_field):
        if limit is not None and len(samples) >= limit:
            break
        if sample.id in seen:
            raise DataError(
                f"{_name(source)}: duplicate sample id {sample.id!r} (records {seen[sample.id]} and {len(samples)}); "
                f"ids must be unique"
            )
        seen[sample.id] = len(samples)
        samples.append(sample)
    if not samples:
        raise DataError(f"{_name(source)}: no samples (the input is empty)")
    return samples


def _name(source: Any) -> str:
    return str(source) if isinstance(source, (str, Path)) else type(source).__name__


# --------------------------------------------------------------------------------------------------------
# Rendering to model text
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rendered:
    """A sample as the model reads it."""

    text: str
    response_char_start: int
    """Character offset in ``text`` where the response begins (``len(text)`` when there is no response)."""
    content_spans: tuple[tuple[int, int], ...] = ()
    """Character spans of the messages' own text; the template's scaffolding (turn markers, role names, the
    newlines between turns, a template's default system prompt) lies outside them and is never pooled."""


def gemma_turns(messages: list[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
    """Gemma's turn format, and the character span of each message's content in it.

    ``user`` turns stay user turns and any other role (``assistant``) becomes ``model``. A system message goes into
    the next user turn (before its content, after a blank line), or stands as a user turn of its own when a model
    turn or the end follows; of several system messages in a row only the last is kept.
    """
    out: list[str] = []
    spans: list[tuple[int, int]] = []
    pos = 0

    def turn(role: str, parts: list[str]) -> None:
        nonlocal pos
        head = f"<start_of_turn>{role}\n"
        out.append(head)
        pos += len(head)
        for i, part in enumerate(parts):
            if i:
                out.append("\n\n")
                pos += 2
            spans.append((pos, pos + len(part)))
            out.append(part)
            pos += len(part)
        out.append("<end_of_turn>\n")
        pos += len("<end_of_turn>\n")

    system = ""
    for message in messages:
        if message["role"] == "system":
            system = message["content"]
            continue
        if message["role"] == "user":
            turn("user", [system, message["content"]] if system else [message["content"]])
        else:
            if system:  # a system message with no user turn after it stands in for one
                turn("user", [system])
            turn("model", [message["content"]])
        system = ""
    if system:
        turn("user", [system])
    return "".join(out), spans


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def _find_spans(text: str, messages: list[dict[str, str]]) -> list[tuple[int, int]]:
    """Spans of each message's content in a template-rendered text, searched in order."""
    spans, pos = [], 0
    for message in messages:
        content = message["content"]
        at = text.find(content, pos) if content else -1
        if at < 0:
            at = text.find(content.strip(), pos) if content.strip() else -1
            content = content.strip()
        if at >= 0:
            spans.append((at, at + len(content)))
            pos = at + len(content)
    return spans


def render(sample: Sample, tokenizer: Any = None) -> Rendered:
    """Model text of a sample: the tokenizer's chat template if it has one, else Gemma's turn format.

    The BOS token is not part of the text; the activation stage adds it when tokenising.
    """
    if sample.text is not None:
        return Rendered(sample.text, 0, ((0, len(sample.text)),))
    messages = sample.messages
    has_response = bool(messages) and messages[-1]["role"] == "assistant"
    head = messages[:-1] if has_response else messages
    if tokenizer is not None and has_chat_template(tokenizer):
        prefix = tokenizer.apply_chat_template(head, tokenize=False, add_generation_prompt=has_response)
        full = tokenizer.apply_chat_template(messages, tokenize=False) if has_response else prefix
        bos = getattr(tokenizer, "bos_token", None)
        if bos and full.startswith(bos):
            prefix, full = prefix[len(bos) :], full[len(bos) :]
        if not full.startswith(prefix):  # templates that rewrite earlier turns: fall back to the common prefix
            prefix = _common_prefix(prefix, full)
        start = len(prefix) if has_response else len(full)
        return Rendered(full, start, tuple(_find_spans(full, messages)))
    text, spans = gemma_turns(messages)
    if not has_response:
        return Rendered(text, len(text), tuple(spans))
    return Rendered(text, spans[-1][0], tuple(spans))


def _common_prefix(a: str, b: str) -> str:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return a[:n]


def fingerprint(samples: Iterable[Sample]) -> str:
    """Hash of sample ids and content, for manifests: same inputs → same fingerprint."""
    digest = hashlib.sha256()
    for s in samples:
        digest.update(s.id.encode())
        digest.update(b"\0")
        digest.update(json.dumps([s.messages, s.text], sort_keys=True, ensure_ascii=False).encode())
        digest.update(b"\1")
    return digest.hexdigest()[:16]
