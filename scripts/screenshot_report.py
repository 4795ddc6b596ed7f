"""Render a mona HTML report in headless Chromium and save a PNG screenshot.

    python scripts/screenshot_report.py out/sel/report.html out/sel/report.png [--width 1280] [--height 2400]
"""

from __future__ import annotations

import argparse
import sys

from mona.report import screenshot


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("html")
    p.add_argument("png")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=2400)
    args = p.parse_args(argv)
    print(screenshot(args.html, args.png, width=args.width, height=args.height))
    return 0


if __name__ == "__main__":
    sys.exit(main())
