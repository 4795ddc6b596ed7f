import pytest

from mona.cli import main


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
