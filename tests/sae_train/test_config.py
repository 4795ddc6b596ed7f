"""SAETrainConfig: YAML round trip, validation, and the mona-sae / mona sae command line (flags over YAML)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mona.cli import main as mona_main
from sae_training.cli import build_parser, main, train_config
from sae_training.config import ConfigError, SAETrainConfig

ROOT = Path(__file__).resolve().parents[2]


def test_yaml_round_trip(tmp_path):
    cfg = SAETrainConfig(name="x", d_sae=1024, k=16, hook="blocks.3.hook_resid_post", extra={"seed": 3})
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    assert SAETrainConfig.from_yaml(path) == cfg
    cfg.save(tmp_path / "x.json")
    assert SAETrainConfig.from_dict(json.loads((tmp_path / "x.json").read_text())) == cfg


def test_shipped_configs_load():
    files = sorted((ROOT / "configs" / "sae").glob("*.yaml"))
    assert files
    for path in files:
        cfg = SAETrainConfig.from_yaml(path)
        assert cfg.resolved_dead_feature_window < cfg.total_steps


def test_shipped_configs_load_the_same_through_the_cli():
    for path in sorted((ROOT / "configs" / "sae").glob("*.yaml")):
        args = build_parser().parse_args(["train", "--config", str(path)])
        assert train_config(args) == SAETrainConfig.from_yaml(path)


def test_flags_override_yaml_and_yaml_overrides_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("d_sae: 1024\nk: 16\nlr: 1e-3\ndead_feature_window: 5\n")
    args = build_parser().parse_args(["train", "--config", str(path), "--k", "8", "--hook", "blocks.2.hook_resid_post",
                                      "--dead-feature-window", "none", "--name", "007", "--no-progress"])
    cfg = train_config(args)
    assert (cfg.d_sae, cfg.k, cfg.lr, cfg.hook) == (1024, 8, 1e-3, "blocks.2.hook_resid_post")
    assert cfg.dead_feature_window is None and cfg.name == "007" and cfg.progress is False
    assert cfg.context_size == SAETrainConfig().context_size


def test_underscore_spelling_is_accepted():
    """Old commands (``--training_tokens``) keep working; the documented spelling is ``--training-tokens``."""
    dash = train_config(build_parser().parse_args(["train", "--training-tokens", "200000", "--d-sae", "2048"]))
    under = train_config(build_parser().parse_args(["train", "--training_tokens", "200000", "--d_sae", "2048"]))
    assert dash == under and dash.training_tokens == 200_000 and dash.d_sae == 2048


def test_extra_takes_a_mapping():
    args = build_parser().parse_args(["train", "--extra", "{seed: 3}"])
    assert train_config(args).extra == {"seed": 3}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"architecture": "gated"}, "architecture must be one of topk, standard, jumprelu, batchtopk"),
        ({"hook": "hook_embed"}, "not a per-layer hook"),
        ({"k": 64, "d_sae": 64}, "k .64. must be smaller than d_sae"),
        ({"dead_feature_window": 10_000}, "must be shorter than the run"),
        ({"training_tokens": 100}, "less than one batch"),
        ({"buffer_tokens": 16}, "buffer_tokens"),
        ({"eval_fraction": 1.5}, "eval_fraction"),
        ({"save_dtype": "int8"}, "save_dtype must be one of"),
    ],
)
def test_validation(changes, message):
    with pytest.raises(ConfigError, match=message):
        SAETrainConfig(**changes)


def test_unknown_yaml_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("d_sae: 128\nexpansion: 4\n")
    with pytest.raises(ConfigError, match="unknown config key.*expansion"):
        SAETrainConfig.from_yaml(path)


def test_cli_dry_run_applies_flags(capsys):
    assert main(["train", "--config", str(ROOT / "configs/sae/default.yaml"), "--dry-run", "--d-sae", "2048",
                 "--k", "16"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["d_sae"] == 2048 and printed["k"] == 16 and printed["hook"] == "blocks.6.hook_resid_post"


def test_mona_sae_and_mona_sae_subcommand_print_the_same_config(capsys):
    argv = ["train", "--config", str(ROOT / "configs/sae/layer12.yaml"), "--dry-run", "--training-tokens", "200000"]
    assert main(argv) == 0
    standalone = capsys.readouterr().out
    assert mona_main(["sae", *argv]) == 0
    assert capsys.readouterr().out == standalone
    assert json.loads(standalone)["training_tokens"] == 200_000


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mona-sae train: error:") and "\n" not in err
    assert main(["train", "--config", str(ROOT / "configs/sae/default.yaml"), "--architecture", "gated"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mona-sae train: error: argument --architecture: invalid choice 'gated'") and "\n" not in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("k: 64\nd_sae: 64\n")
    assert mona_main(["sae", "train", "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"mona sae train: error: {bad}: k (64) must be smaller than d_sae (64)"


def test_python_dash_m_entry_point():
    proc = subprocess.run([sys.executable, "-m", "sae_training", "train", "--config", "configs/sae/default.yaml",
                           "--dry-run"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["architecture"] == "topk"
