"""SAETrainConfig: YAML round trip, command-line overrides, validation, and the mona-sae CLI surface."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sae_training.cli import main
from sae_training.config import ConfigError, SAETrainConfig, parse_overrides

ROOT = Path(__file__).resolve().parents[1]


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


def test_overrides():
    over = parse_overrides(["--d_sae", "2048", "--hook", "blocks.2.hook_resid_post", "lr=1e-3", "--init-b-dec",
                            "zeros", "--dead_feature_window", "null", "--name", "007"])
    assert over == {"d_sae": 2048, "hook": "blocks.2.hook_resid_post", "lr": 1e-3, "init_b_dec": "zeros",
                    "dead_feature_window": None, "name": "007"}
    with pytest.raises(ConfigError, match="unknown config key 'widthh'"):
        parse_overrides(["--widthh", "3"])
    with pytest.raises(ConfigError, match="has no value"):
        parse_overrides(["--k"])


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


def test_cli_dry_run_applies_overrides(capsys):
    assert main(["train", "--config", str(ROOT / "configs/sae/default.yaml"), "--dry-run", "--d_sae", "2048",
                 "k=16"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["d_sae"] == 2048 and printed["k"] == 16 and printed["hook"] == "blocks.6.hook_resid_post"


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mona-sae train: error:") and "\n" not in err
    assert main(["train", "--config", str(ROOT / "configs/sae/default.yaml"), "--architecture", "gated"]) == 2
    assert "architecture must be one of" in capsys.readouterr().err


def test_python_dash_m_entry_point():
    proc = subprocess.run([sys.executable, "-m", "sae_training", "train", "--config", "configs/sae/default.yaml",
                           "--dry-run"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["architecture"] == "topk"
