"""``mona report``: one self-contained HTML report of a selection."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mona.cli.args import add_command, add_config, add_config_file, config_from, load_config
from mona.cli.explain import SelectionInputs, explain_selection


@dataclass
class ReportArgs(SelectionInputs):
    """What ``mona report`` reads and writes."""

    out: Path | None = field(default=None, metadata={"flags": ("-o",)})
    """HTML file (default: <selection>/report.html)."""
    label_samples: Path | None = None
    """Compute (or reuse cached) feature labels from these samples (runs --model and --sae once)."""
    model: str = "gemma-3-270m"
    """Model for --label-samples."""
    sae: str = "default"
    """SAE for --label-samples."""
    screenshot: Path | None = None
    """Also render the page to this PNG with headless Chromium."""


def register(subparsers: Any) -> None:
    from mona.explain import ExplainConfig
    from mona.labels import LabelConfig
    from mona.report import ReportConfig
    from mona.runtime import Runtime

    p = add_command(
        subparsers, "report", run,
        help="write one self-contained HTML report of a selection",
        description="Summary, score and length distributions, domain mix, over-represented features with their "
        "top-activating contexts, and a card per pick, in one HTML file with inline CSS and embedded plots.",
    )
    add_config(p, ReportArgs)
    add_config_file(p, "report", "explain", "labels")
    add_config(p, ReportConfig, dest="report", title="report (ReportConfig)")
    add_config(p, ExplainConfig, dest="explain", title="explanation (ExplainConfig)")
    add_config(p, LabelConfig, dest="labels", title="feature labels, with --label-samples (LabelConfig)")
    add_config(p, Runtime, dest="runtime", title="device and precision, with --label-samples (Runtime)")


def run(args: argparse.Namespace) -> int:
    from mona.report import ReportConfig, render_report

    a = config_from(args, ReportArgs)
    config = load_config(args, ReportConfig, dest="report", section="report", others=("explain", "labels"))
    labels: Any = a.labels
    if a.label_samples is not None:
        from mona.labels import LabelConfig, compute_labels
        from mona.runtime import Runtime

        label_config = load_config(args, LabelConfig, dest="labels", section="labels", primary=False)
        runtime = config_from(args, Runtime, dest="runtime").resolved()
        labels = compute_labels(a.label_samples, model=a.model, sae=a.sae, config=label_config, runtime=runtime)
    ex = explain_selection(args, a, labels=labels, primary=False)
    path = render_report(a.selection, explanation=ex, labels=labels, out=a.out, config=config)
    print(f"report: {path}")
    if a.screenshot is not None:
        from mona.report import screenshot

        screenshot(path, a.screenshot)
        print(f"screenshot: {a.screenshot}")
    return 0
