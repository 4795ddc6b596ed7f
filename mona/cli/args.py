"""Command-line flags generated from config dataclasses, and config files loaded into the same dataclasses.

Every stage has one config dataclass with field docstrings (``EmbedConfig``, ``ExplainConfig``, ...). This module
turns such a class into argparse flags, so a new field gets its flag, help, default and choices without touching
the CLI (sparsify's ``parse(RunConfig)`` idea):

* one flag style everywhere: ``--max-tokens``; the field's own spelling (``--max_tokens``) is accepted as a
  hidden alias so older commands keep working;
* help is the field's docstring and its default; ``Literal`` fields take one of their values;
* ``bool`` fields get ``--flag`` / ``--no-flag``; ``T | None`` fields also take ``none``;
* tuple fields take several values, space- or comma-separated (``--quotas 2 1`` or ``--quotas 2,1``), and a
  repeated flag adds to the list;
* field ``metadata`` may declare ``positional=True``, extra ``flags`` (``("-o",)``), ``nargs``, or ``const``
  (the value of the flag given alone, its value optional).

Flags that are not given leave no attribute on the namespace, so :func:`config_from` can apply the precedence
*flags > config file > dataclass defaults*. The dataclass's own ``__post_init__`` validates the result; its
:class:`~mona.errors.MonaError` (and unknown or mistyped config-file keys, named with the file) reach the user
as one line, as do argparse's own errors (:class:`Parser`).

A subcommand with several dataclasses (``mona select``: the common options and the chosen method's) adds each
under its own ``dest`` prefix::

    add_config(parser, SelectConfig, dest="select", exclude=("options",))
    add_config(parser, method.Options, dest="options")
    ...
    config = config_from(args, SelectConfig, dest="select", yaml=read_config(path, "select"), source=path)
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import logging
import sys
import textwrap
import types
import typing
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from mona.errors import MonaError

_NONE = ("none", "null")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line, ``<prog>: error: <message>``, exit status 2."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


# --------------------------------------------------------------------------------------------------------
# Reading a dataclass: field docstrings and types
# --------------------------------------------------------------------------------------------------------


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring below each field of a dataclass (and of its dataclass bases), whitespace collapsed."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for stmt, following in zip(body, body[1:]):
            if (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                docs[stmt.target.id] = " ".join(following.value.value.split())
    return docs


@dataclasses.dataclass(frozen=True)
class _Kind:
    """What values a field takes: its element type, whether ``None`` is allowed, its choices, if a sequence."""

    base: Any
    optional: bool = False
    choices: tuple | None = None
    sequence: type | None = None  # tuple or list

    @property
    def name(self) -> str:
        if self.choices is not None:
            return "{" + ",".join(str(c) for c in self.choices) + "}"
        return getattr(self.base, "__name__", "value").upper().replace("ANY", "VALUE")


def _kind(annotation: Any) -> _Kind:
    optional = False
    if get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        optional = len(members) < len(get_args(annotation))
        annotation = members[0] if len(members) == 1 else Any
    sequence = None
    origin = get_origin(annotation)
    if origin in (tuple, list) or annotation in (tuple, list):
        sequence = origin or annotation
        members = [a for a in get_args(annotation) if a is not Ellipsis]
        annotation = members[0] if members else Any
    if get_origin(annotation) is Literal:
        choices = get_args(annotation)
        return _Kind(type(choices[0]), optional, choices, sequence)
    if get_origin(annotation) is dict:
        annotation = dict
    return _Kind(annotation, optional, None, sequence)


@functools.cache
def _kinds(cls: type) -> dict[str, _Kind]:
    hints = typing.get_type_hints(cls)
    return {f.name: _kind(hints.get(f.name, Any)) for f in dataclasses.fields(cls)}


def _from_text(text: str, kind: _Kind) -> Any:
    """One command-line word as a value of ``kind`` (ValueError with a short reason if it is not one)."""
    if (kind.optional or kind.base is Any) and text.strip().lower() in _NONE:
        return None
    base = kind.base
    if base is bool:
        if text.lower() not in _TRUE + _FALSE:
            raise ValueError(f"expected true or false, got {text!r}")
        value: Any = text.lower() in _TRUE
    elif base is int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"expected an integer, got {text!r}") from None
    elif base is float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"expected a number, got {text!r}") from None
    elif base in (str, Path):
        value = base(text)
    else:  # dict, Any: a YAML value (``{a: 1}``, ``[1, 2]``, ``3``); otherwise the text (``@FILE``)
        import yaml

        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            if base is dict:
                raise ValueError(f"cannot parse {text!r}") from None
            value = text
        if base is dict and not isinstance(value, dict):
            raise ValueError(f"expected a mapping such as '{{key: value}}', got {text!r}")
    return _check_choice(value, kind)


def _check_choice(value: Any, kind: _Kind) -> Any:
    if kind.choices is not None and value not in kind.choices:
        raise ValueError(f"invalid choice {value!r} (choose from {', '.join(map(str, kind.choices))})")
    return value


def _split(text: str, kind: _Kind) -> list[str]:
    """Comma-separated lists, except for text and path elements (a comma may belong to a file name)."""
    if kind.base in (str, Path) and kind.choices is None:
        return [text]
    return [part for part in text.split(",") if part.strip()]


def _one_value(value: Any, kind: _Kind) -> Any:
    """A config-file value (already typed by YAML/JSON) checked and converted to ``kind``'s element type."""
    if value is None:
        if kind.optional or kind.base is Any:
            return None
        raise ValueError("must not be null")
    base = kind.base
    if isinstance(value, str) and base not in (str, Path, Any):  # YAML 1.1 reads 1e-3 as a string
        return _from_text(value, kind)
    if base is bool:
        ok = isinstance(value, bool)
    elif base is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif base is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif base in (str, Path):
        ok = isinstance(value, (str, int, float)) and not isinstance(value, bool)
        value = base(str(value)) if ok else value
    elif base is dict:
        ok = isinstance(value, dict)
    else:
        ok = True
    if not ok:
        raise ValueError(f"expected {_describe(kind)}, got {value!r}")
    return _check_choice(value, kind)


def _describe(kind: _Kind) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", Path: "a path",
             dict: "a mapping"}
    return names.get(kind.base, kind.name.lower())


def _value(value: Any, kind: _Kind) -> Any:
    if kind.sequence is None:
        return _one_value(value, kind)
    if value is None and kind.optional:
        return None
    if isinstance(value, str):
        value = [_from_text(part, dataclasses.replace(kind, optional=False)) for part in _split(value, kind)]
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"expected a list of {_describe(kind)}, got {value!r}")
    return kind.sequence(_one_value(v, dataclasses.replace(kind, optional=False)) for v in value)


# --------------------------------------------------------------------------------------------------------
# Dataclass → flags
# --------------------------------------------------------------------------------------------------------


def flag(name: str) -> str:
    """The command-line spelling of a field: ``max_tokens`` → ``--max-tokens``."""
    return "--" + name.replace("_", "-")


def key(name: str, dest: str | None = None) -> str:
    """The namespace attribute a field's flag sets (``dest.name``, or ``name`` without a dest)."""
    return f"{dest}.{name}" if dest else name


class _Sequence(argparse.Action):
    """Several values, space- or comma-separated; repeating the flag adds to the list."""

    def __init__(self, *args: Any, kind: _Kind, **kwargs: Any) -> None:
        self.kind = kind
        super().__init__(*args, **kwargs)

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: str | None = None) -> None:
        words = [values] if isinstance(values, str) else list(values)
        if self.kind.optional and len(words) == 1 and words[0].strip().lower() in _NONE:
            setattr(namespace, self.dest, None)
            return
        element = dataclasses.replace(self.kind, optional=False)
        try:
            parsed = [_from_text(part, element) for word in words for part in _split(word, self.kind)]
        except ValueError as exc:
            raise argparse.ArgumentError(self, str(exc)) from None
        previous = getattr(namespace, self.dest, None) or ()
        setattr(namespace, self.dest, self.kind.sequence([*previous, *parsed]))


def _converter(kind: _Kind) -> Any:
    def convert(text: str) -> Any:
        if text is argparse.SUPPRESS:  # an optional positional left out: argparse converts its default too
            return text
        try:
            return _from_text(text, kind)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = kind.name.lower()
    return convert


def _default_text(field: dataclasses.Field) -> str:
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return ""
    if isinstance(value, tuple):
        value = ",".join(map(str, value)) if value else "none"
    elif isinstance(value, bool):
        value = str(value).lower()
    elif value is None:
        value = "none"
    elif isinstance(value, Path):
        value = str(value)
    return f" (default: {value})"


def _help(cls: type, field: dataclasses.Field) -> str:
    text = field.metadata.get("help") or field_docs(cls).get(field.name, "")
    text = text.replace("``", "`")
    return (text + _default_text(field)).strip().replace("%", "%%")


def add_config(
    parser: argparse.ArgumentParser | Any,
    cls: type,
    *,
    dest: str | None = None,
    exclude: Iterable[str] = (),
    aliases: dict[str, Sequence[str]] | None = None,
    title: str | None = None,
) -> Any:
    """Add a flag for every field of the dataclass ``cls`` to ``parser`` (or an argument group of it).

    ``dest``: namespace prefix (``dest.field``), needed when two dataclasses share a subcommand. ``exclude``:
    fields without a flag. ``aliases``: extra option strings per field (``{"batch_size_prompts":
    ["--batch-size"]}``). ``title``: put the flags in their own help section. Returns the group they went into.
    """
    skip = set(exclude)
    kinds = _kinds(cls)
    target = parser.add_argument_group(title) if title else parser
    for field in dataclasses.fields(cls):
        if not field.init or field.name in skip:
            continue
        kind = kinds[field.name]
        meta = field.metadata
        dest_name = key(field.name, dest)
        required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        common: dict[str, Any] = {"default": argparse.SUPPRESS, "help": _help(cls, field)}
        if meta.get("positional"):
            nargs = meta.get("nargs", None if required else "?")
            target.add_argument(dest_name, metavar=field.name, type=_converter(kind), nargs=nargs, **common)
            continue
        extra = [*meta.get("flags", ()), *(aliases or {}).get(field.name, ())]
        names = sorted([flag(field.name), *extra], key=lambda n: n.startswith("--"))  # -o before --out
        if kind.base is bool and kind.sequence is None:
            options: dict[str, Any] = {"action": argparse.BooleanOptionalAction}
        elif kind.sequence is not None:
            options = {"action": _Sequence, "kind": kind, "nargs": meta.get("nargs", "+"), "metavar": kind.name}
        else:
            options = {"type": _converter(kind), "metavar": kind.name}
            if "const" in meta:  # the flag alone means this value: ``--ray`` = ``--ray local``
                options.update(nargs="?", const=meta["const"])
        target.add_argument(*names, dest=dest_name, required=required, **options, **common)
        if "_" in field.name:  # the field's own spelling, accepted silently
            target.add_argument("--" + field.name, dest=dest_name, **{**options, **common, "help": argparse.SUPPRESS})
    return target


def config_from(
    args: argparse.Namespace,
    cls: type,
    *,
    dest: str | None = None,
    yaml: dict[str, Any] | None = None,
    source: str | Path | None = None,
    defaults: dict[str, Any] | None = None,
) -> Any:
    """An instance of ``cls`` from, by precedence: the flags given on the command line (under ``dest``), ``yaml``
    (the values read from a config file), ``defaults`` (the caller's), the dataclass's own defaults.

    ``yaml`` keys are field names (``max_tokens`` or ``max-tokens``); an unknown key or a value of the wrong
    type raises a one-line :class:`~mona.errors.MonaError` naming ``source`` (the file) and the key, and so does
    the dataclass's own validation when the file's values are invalid by themselves.
    """
    where = f"{source}: " if source is not None else ""
    kinds = _kinds(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    from_file: dict[str, Any] = {}
    for raw, value in (yaml or {}).items():
        name = str(raw).replace("-", "_")
        if name not in names:
            raise MonaError(f"{where}unknown {cls.__name__} key {raw!r}; known keys: {', '.join(names)}")
        try:
            from_file[name] = _value(value, kinds[name])
        except ValueError as exc:
            raise MonaError(f"{where}{raw}: {exc}") from None
    without_flags = {**(defaults or {}), **from_file}
    try:
        return cls(**{**without_flags, **given(args, cls, dest)})
    except MonaError as exc:
        if from_file and _invalid(cls, without_flags):
            raise MonaError(f"{where}{exc}") from None
        raise


def _invalid(cls: type, values: dict[str, Any]) -> bool:
    try:
        cls(**values)
    except MonaError:
        return True
    return False


def given(args: argparse.Namespace, cls: type, dest: str | None = None) -> dict[str, Any]:
    """The fields of ``cls`` set explicitly on the command line (flags not given leave no attribute)."""
    names = (f.name for f in dataclasses.fields(cls) if f.init)
    return {name: getattr(args, key(name, dest)) for name in names if hasattr(args, key(name, dest))}


# --------------------------------------------------------------------------------------------------------
# Config files
# --------------------------------------------------------------------------------------------------------


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The top-level mapping of a YAML (or JSON) file; one-line :class:`MonaError` if it is not one."""
    import yaml

    try:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise MonaError(f"cannot read config {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise MonaError(f"cannot read config {path}: {' '.join(str(exc).split())}") from None
    if not isinstance(loaded, dict):
        raise MonaError(f"config {path}: expected a mapping of field names to values")
    return loaded


def read_config(path: str | Path, section: str, *, others: Iterable[str] = ()) -> dict[str, Any]:
    """The fields for ``section`` in a config file: its ``section:`` mapping if there is one, otherwise the whole
    file less the sections in ``others`` (which belong to the subcommand's other dataclasses)."""
    data = read_config_file(path)
    if section in data:
        value = data[section] or {}
        if not isinstance(value, dict):
            raise MonaError(f"config {path}: section {section!r} must be a mapping of field names to values")
        return dict(value)
    return {k: v for k, v in data.items() if k not in set(others)}


def read_section(path: str | Path, section: str) -> dict[str, Any]:
    """Only the ``section:`` mapping of a config file (empty if it has none)."""
    data = read_config_file(path).get(section) or {}
    if not isinstance(data, dict):
        raise MonaError(f"config {path}: section {section!r} must be a mapping of field names to values")
    return dict(data)


def add_config_file(parser: argparse.ArgumentParser, *sections: str) -> None:
    """The ``--config FILE`` option of a subcommand whose options can also come from a file."""
    named = " / ".join(f"'{s}:'" for s in sections)
    parser.add_argument(
        "--config", type=Path, metavar="FILE",
        help=f"YAML/JSON file with the options below: its {named} section (or the whole file); flags override it",
    )


def load_config(
    args: argparse.Namespace, cls: type, *, dest: str | None, section: str, others: Iterable[str] = (),
    primary: bool = True, defaults: dict[str, Any] | None = None,
) -> Any:
    """:func:`config_from` with the ``--config`` file's ``section`` (the whole file when ``primary`` and it has
    no such section, less ``others``)."""
    path = getattr(args, "config", None)
    if path is None:
        return config_from(args, cls, dest=dest, defaults=defaults)
    data = read_config(path, section, others=others) if primary else read_section(path, section)
    return config_from(args, cls, dest=dest, yaml=data, source=path, defaults=defaults)


# --------------------------------------------------------------------------------------------------------
# Subcommands and the entry point
# --------------------------------------------------------------------------------------------------------


def add_command(subparsers: Any, name: str, func: Any, **kwargs: Any) -> argparse.ArgumentParser:
    """A subcommand whose parsed namespace is handed to ``func``; errors are reported under its ``prog``."""
    parser = subparsers.add_parser(name, **kwargs)
    parser.set_defaults(func=func, cmd=parser.prog)
    return parser


def run_main(parser: argparse.ArgumentParser, argv: list[str] | None = None,
             quiet_loggers: Iterable[str] = ()) -> int:
    """Parse ``argv`` and run the chosen subcommand's ``func``. Returns the exit status: argparse's own for
    ``--help`` and usage errors, 2 with one line on stderr for a :class:`MonaError`."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    verbose = getattr(args, "verbose", False)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for name in quiet_loggers:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except MonaError as exc:
        command = getattr(args, "command", None)
        prog = getattr(args, "cmd", None) or (f"{parser.prog} {command}" if command else parser.prog)
        print(f"{prog}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
