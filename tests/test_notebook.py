"""The quickstart notebook runs top to bottom (real default model; slow).

Without the shipped default SAE (a fresh checkout before it is trained) the notebook runs with a random TopK SAE
on the same hook, which still exercises every step.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


def random_default_hook_sae(folder: Path) -> str:
    import torch
    from sae_lens import TopKSAE, TopKSAEConfig

    from mona.saes import DEFAULT_SAE_HOOK

    torch.manual_seed(0)
    sae = TopKSAE(TopKSAEConfig(d_in=640, d_sae=1024, k=32))
    sae.cfg.metadata.hook_name = DEFAULT_SAE_HOOK
    with torch.no_grad():
        sae.W_enc.normal_(0, 640**-0.5)
        sae.W_dec.copy_(sae.W_enc.T)
    sae.save_model(str(folder))
    return str(folder)


@pytest.mark.slow
def test_quickstart_notebook(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    from mona.saes import default_sae_dir

    if not (default_sae_dir() / "sae_weights.safetensors").exists():
        monkeypatch.setenv("MONA_QUICKSTART_SAE", random_default_hook_sae(tmp_path / "sae"))
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
