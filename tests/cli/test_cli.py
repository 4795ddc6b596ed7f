import argparse
import dataclasses
import re
from pathlib import Path

import pytest

from mona.cli import build_parser, main


def test_unknown_model_exits_with_one_line(capsys):
    assert main(["stats", "--model", "no-such-model"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mona stats: error: unknown model 'no-such-model'")


def test_bad_input_file_exits_with_location(capsys, tmp_path):
    bad = tmp_path / "pool.jsonl"
    bad.write_text('{"prompt": "a", "response": "b"}\n{oops\n')
    assert main(["stats", "--input", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pool.jsonl:2: not valid JSON" in err[0]


@pytest.mark.slow
def test_stats_prints_layer_statistics(capsys):
    assert main(["stats", "--layers", "0,6"]) == 0
    out = capsys.readouterr().out
    assert "model gemma-3-270m" in out and "12 samples" in out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith(("0 ", "6 "))]
    assert [r[0] for r in rows] == ["0", "6"]
    assert float(rows[1][4]) > 0.5  # one mean direction holds most of the residual energy at layer 6


@pytest.mark.slow
def test_demo_runs_end_to_end(capsys, tmp_path):
    """The README's main job on a small slice: data, embed, select, explain, report."""
    args = ["demo", "--out", str(tmp_path), "--pool-size", "100", "--target-size", "24", "--label-samples", "20"]
    assert main(args) == 0
    out = capsys.readouterr().out
    for name in ("mona-math", "diversity"):
        folder = tmp_path / "selections" / name
        assert (folder / "selection.jsonl").exists() and (folder / "explain.json").exists()
        html = (folder / "report.html").read_text()
        assert "data:image/png;base64," in html and 'src="http' not in html and "<script" not in html
        assert str(folder / "report.html") in out
    assert main(args) == 0  # a rerun reuses every artifact
    assert "embedded pool and target" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------------------
# Flags generated from the config dataclasses (mona.cli.args)
# --------------------------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def _subparser(parser: argparse.ArgumentParser, *path: str) -> argparse.ArgumentParser:
    for name in path:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


def _configs():
    from mona.embed import EmbedConfig
    from mona.explain import ExplainConfig
    from mona.labels import LabelConfig
    from mona.report import ReportConfig
    from sae_training.config import SAETrainConfig
    from sae_training.evaluate import EvalConfig

    return [(("embed",), EmbedConfig, "embed"), (("explain",), ExplainConfig, "explain"),
            (("report",), ReportConfig, "report"),
            (("report",), ExplainConfig, "explain"), (("labels",), LabelConfig, "labels"),
            (("report",), LabelConfig, "labels"), (("sae", "train"), SAETrainConfig, "train"),
            (("sae", "eval"), EvalConfig, "eval")]


@pytest.mark.parametrize("index", range(8))
def test_every_config_field_has_a_flag_with_its_docstring(index, capsys):
    from mona.cli.args import field_docs, flag, key

    path, cls, dest = _configs()[index]
    parser = _subparser(build_parser(), *path)
    by_flag = {s: a for a in parser._actions for s in a.option_strings}
    for field in dataclasses.fields(cls):
        action = by_flag.get(flag(field.name))
        assert action is not None, f"{cls.__name__}.{field.name} has no {flag(field.name)} on mona {' '.join(path)}"
        assert action.dest == key(field.name, dest)
    assert main([*path, "--help"]) == 0
    shown = _flat(capsys.readouterr().out)
    for field in dataclasses.fields(cls):
        doc = _flat(field_docs(cls)[field.name].replace("``", "`"))
        assert " ".join(doc.split()[:8]) in shown, field.name


def _flat(text: str) -> str:
    """Help text as one line (argparse wraps lines, also after hyphens)."""
    return re.sub(r"-\s+", "-", " ".join(text.split()))


def test_config_file_and_flags(tmp_path):
    from mona.cli import embed

    path = tmp_path / "embed.yaml"
    path.write_text("embed:\n  pooling: max\n  span: response\n  shard-size: 64\n")
    args = build_parser().parse_args(["embed", "in.jsonl", "-o", "o", "--config", str(path), "--span", "prompt"])
    cfg = embed._config(args)
    assert (cfg.pooling, cfg.span, cfg.shard_size, cfg.batch_tokens) == ("max", "prompt", 64, 4096)
    whole = tmp_path / "whole.yaml"  # no section: the whole file
    whole.write_text("dtype: float32\n")
    assert embed._config(build_parser().parse_args(["embed", "-o", "o", "--config", str(whole)])).dtype == "float32"


def test_report_reads_its_sections(tmp_path):
    from mona.cli.args import load_config
    from mona.explain import ExplainConfig
    from mona.report import ReportConfig

    path = tmp_path / "r.yaml"
    path.write_text("cards: 5\nexplain:\n  alpha: 0.01\nlabels:\n  top_k: 3\n")
    args = build_parser().parse_args(["report", "sel", "--config", str(path), "--features", "7"])
    cfg = load_config(args, ReportConfig, dest="report", section="report", others=("explain", "labels"))
    assert (cfg.cards, cfg.features) == (5, 7)
    assert load_config(args, ExplainConfig, dest="explain", section="explain", primary=False).alpha == 0.01


BAD_YAML = {
    "unknown-key": ("embed:\n  poolin: max\n", "unknown EmbedConfig key 'poolin'"),
    "bad-choice": ("mode: sparse\n", "mode: invalid choice 'sparse' (choose from"),
    "bad-type": ("embed:\n  max_tokens: many\n", "max_tokens: expected an integer, got 'many'"),
    "invalid": ("shard_size: 0\n", "embed shard_size must be >= 1"),
}


@pytest.mark.parametrize("case", sorted(BAD_YAML))
def test_bad_config_file_is_one_line_naming_file_and_key(case, tmp_path, capsys):
    text, message = BAD_YAML[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    assert main(["embed", "in.jsonl", "-o", str(tmp_path / "s"), "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"mona embed: error: {path}: ") and message in err, err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["embed", "in.jsonl", "-o", "s", "--mode", "sparse"], "mona embed: error: argument --mode: invalid choice"),
        (["labels", "p.jsonl", "--top-k", "x"], "mona labels: error: argument --top-k: expected an integer, got 'x'"),
        (["explain", "sel", "--alpha", "2"], "mona explain: error: alpha must be in (0, 1)"),
        (["sae", "eval", "d", "--tokens", "0"], "mona sae eval: error: eval tokens"),
        (["sae", "train", "--normalize-activations", "l2"], "mona sae train: error: argument --normalize-activations"),
        (["embed", "in.jsonl", "-o", "s", "--config", "missing.yaml"],
         "mona embed: error: cannot read config missing.yaml"),
        (["stats", "--layers", "0,x"], "mona stats: error: argument --layers: expected an integer, got 'x'"),
        (["frobnicate"], "mona: error: argument command: invalid choice"),
    ],
)
def test_bad_flags_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(message), err


def test_tuples_bools_none_and_positionals():
    from mona.cli.args import Parser, add_config, config_from

    @dataclasses.dataclass
    class Toy:
        path: Path = dataclasses.field(metadata={"positional": True})
        """A file."""
        quotas: tuple[float, ...] | None = None
        """Quotas."""
        names: tuple[str, ...] = dataclasses.field(default=(), metadata={"nargs": None})
        """Repeatable."""
        hook: str | None = "h"
        """Hook."""
        flag_on: bool = True
        """On."""

    parser = Parser(prog="toy")
    add_config(parser, Toy, dest="toy")
    toy = config_from(parser.parse_args(["f", "--quotas", "2,1", "3", "--names", "a,b", "--names", "c",
                                         "--hook", "none", "--no-flag-on"]), Toy, dest="toy")
    assert toy == Toy(Path("f"), (2.0, 1.0, 3.0), ("a,b", "c"), None, False)
    args = parser.parse_args(["f", "--quotas", "none"])
    assert config_from(args, Toy, dest="toy", yaml={"quotas": [1, 2]}).quotas is None
    assert config_from(parser.parse_args(["f"]), Toy, dest="toy", yaml={"quotas": "1,2"}).quotas == (1.0, 2.0)
    assert config_from(parser.parse_args(["f", "--flag_on"]), Toy, dest="toy", yaml={"flag_on": False}).flag_on


def test_help_exits_zero(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("demo", "stats", "embed", "select", "explain", "report", "labels", "sae"):
        assert name in out
