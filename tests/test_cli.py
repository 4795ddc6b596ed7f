import pytest

from mona.cli import main


def test_unknown_model_exits_with_one_line(capsys):
    assert main(["demo", "--model", "no-such-model"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mona demo: error: unknown model 'no-such-model'")


def test_bad_input_file_exits_with_location(capsys, tmp_path):
    bad = tmp_path / "pool.jsonl"
    bad.write_text('{"prompt": "a", "response": "b"}\n{oops\n')
    assert main(["demo", "--input", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pool.jsonl:2: not valid JSON" in err[0]


@pytest.mark.slow
def test_demo_prints_layer_statistics(capsys):
    assert main(["demo", "--layers", "0,6"]) == 0
    out = capsys.readouterr().out
    assert "model gemma-3-270m" in out and "12 samples" in out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith(("0 ", "6 "))]
    assert [r[0] for r in rows] == ["0", "6"]
