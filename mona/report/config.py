"""The report's options: one dataclass, so the ``mona report`` flags and their help come from its fields."""

from __future__ import annotations

from dataclasses import dataclass

from mona.errors import MonaError


@dataclass
class ReportConfig:
    """What the HTML report shows; every field is a ``mona report`` flag."""

    cards: int = 24
    """How many selected samples get a card, best first."""
    features: int = 20
    """How many over-represented SAE features are listed."""
    examples: int = 3
    """Top-activating contexts shown per listed feature (needs feature labels)."""
    sample_chars: int = 1500
    """Characters of each sample's text (of each turn of a chat) shown on its card."""
    title: str | None = None
    """Page title (default: "mona selection report — <selection folder name>")."""

    def __post_init__(self) -> None:
        for name in ("cards", "features", "examples", "sample_chars"):
            if getattr(self, name) < 0:
                raise MonaError(f"{name} must be >= 0, got {getattr(self, name)}")
