"""The quickstart notebook runs top to bottom (real default model and the shipped default SAE; slow)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


@pytest.mark.slow
def test_quickstart_notebook(tmp_path, monkeypatch):
    import nbclient
    import nbformat

    monkeypatch.setenv("MONA_QUICKSTART_OUT", str(tmp_path / "out"))
    root = str(NOTEBOOK.parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "picks are math" in outputs and "features covered" in outputs
    report = tmp_path / "out" / "selection" / "report.html"
    assert report.exists() and "Over-represented features" in report.read_text()
