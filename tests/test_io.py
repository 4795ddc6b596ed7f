"""mona.io: atomic writes keep old content on failure and leave no temporaries; hashes; JSON; format checks."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from mona.errors import ArtifactMismatch
from mona.io import (
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    check_format,
    create_exclusive,
    dump_json,
    hash_weight_files,
    sha256_file,
    state_hash,
)


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_atomic_writes_leave_only_the_target(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "héllo")
    atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    atomic_write_json(tmp_path / "c.json", {"b": 1, "a": [np.int64(2), np.float32(0.5)], "p": Path("x")})
    atomic_write(tmp_path / "d.npy", lambda tmp: np.save(tmp, np.arange(3)))
    assert _names(tmp_path) == ["a.txt", "b.bin", "c.json", "d.npy"]
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo"
    assert json.loads((tmp_path / "c.json").read_text()) == {"a": [2, 0.5], "b": 1, "p": "x"}
    assert np.load(tmp_path / "d.npy").tolist() == [0, 1, 2]


def test_failing_writer_keeps_old_content_and_no_temp(tmp_path):
    target = tmp_path / "t.json"
    atomic_write_text(target, "old\n")

    def half_then_fail(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "old\n" and _names(tmp_path) == ["t.json"]


def test_folder_writer_replaces_a_folder(tmp_path):
    def write(n: int):
        def writer(tmp: Path) -> None:
            tmp.mkdir()
            for i in range(n):
                (tmp / f"{i}.txt").write_text(str(i))
        return writer

    atomic_write(tmp_path / "f", write(3))
    atomic_write(tmp_path / "f", write(1))
    assert _names(tmp_path) == ["f"] and _names(tmp_path / "f") == ["0.txt"]


def test_create_exclusive(tmp_path):
    assert create_exclusive(tmp_path / "m.json", "first")
    assert not create_exclusive(tmp_path / "m.json", "second")
    assert (tmp_path / "m.json").read_text() == "first" and _names(tmp_path) == ["m.json"]


def test_hashes(tmp_path):
    (tmp_path / "w.safetensors").write_bytes(b"abc")
    full = sha256_file(tmp_path / "w.safetensors")
    assert full == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert sha256_file(tmp_path / "w.safetensors", short=True) == full[:16]
    assert sha256_file(tmp_path / "w.safetensors", short=8) == full[:8]
    assert hash_weight_files(tmp_path) == full[:16]
    state = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(3)}
    assert state_hash(state) == state_hash({k: v.half() for k, v in state.items()})  # dtype-independent
    assert state_hash(state) != state_hash({**state, "b": torch.ones(3)})
    assert state_hash(torch.nn.Linear(3, 2).requires_grad_(False)) != state_hash(state)


def test_dump_json_is_canonical():
    @dataclass
    class Point:
        x: int
        y: float

    text = dump_json({"b": Point(1, 2.0), "a": {3, 1}})
    assert text.endswith("}\n") and text.index('"a"') < text.index('"b"')
    assert json.loads(text) == {"a": [1, 3], "b": {"x": 1, "y": 2.0}}
    assert dump_json([1], indent=None) == "[1]\n"
    with pytest.raises(TypeError, match="not JSON serialisable"):
        dump_json({"x": object()})


def test_check_format_is_one_line_naming_file_and_versions(tmp_path):
    check_format(1, 1, "store", tmp_path)
    with pytest.raises(ArtifactMismatch) as err:
        check_format(2, 1, "store", tmp_path / "manifest.json")
    message = str(err.value)
    assert "\n" not in message and str(tmp_path / "manifest.json") in message
    assert "format 2" in message and "format 1" in message
