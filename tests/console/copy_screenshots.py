"""Copy the console's screenshots, which its browser tests write into tests/console/screenshots/ (ignored by git),
into docs/images/ for the README:

    .venv/bin/python -m pytest tests/console/test_console_accessibility.py   # takes them, both colour schemes
    .venv/bin/python -m tests.console.copy_screenshots
"""

from __future__ import annotations

import shutil
import sys

from tests.console.conftest import REPO, SCREENSHOTS

TARGET = REPO / "docs" / "images"


def main() -> int:
    shots = sorted(SCREENSHOTS.glob("console-*.png"))
    if not shots:
        print(f"no screenshots in {SCREENSHOTS}: run the console's browser tests first", file=sys.stderr)
        return 1
    TARGET.mkdir(parents=True, exist_ok=True)
    for shot in shots:
        shutil.copy2(shot, TARGET / shot.name)
        print(f"{shot.name} -> {TARGET.relative_to(REPO)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
