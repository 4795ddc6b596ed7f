"""Screenshots of a report page in headless Chromium (offline, throwaway profile)."""

from __future__ import annotations

from pathlib import Path

from mona.errors import MonaError

# ---------------------------------------------------------------------------------------------------------------
# Screenshots (headless Chromium)
# ---------------------------------------------------------------------------------------------------------------

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary on PATH, or ``None``."""
    import shutil

    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(html_path: str | Path, png_path: str | Path, *, width: int = 1280, height: int = 2400,
               timeout: float = 120.0) -> Path:
    """Render ``html_path`` in headless Chromium (offline, throwaway profile) and save a PNG screenshot."""
    import subprocess
    import tempfile

    binary = find_chromium()
    if binary is None:
        raise MonaError("no Chromium found on PATH (Debian: apt-get install chromium)")
    png = Path(png_path).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mona-chromium-") as profile:
        cmd = [
            binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--hide-scrollbars", f"--user-data-dir={profile}", f"--screenshot={png}",
            f"--window-size={width},{height}", Path(html_path).resolve().as_uri(),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if not png.exists():
        raise MonaError(f"Chromium wrote no screenshot (exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
    return png
