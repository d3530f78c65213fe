"""What a fresh Python interpreter imports: for the tests that keep start-up light."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def modules_loaded(script: str) -> set[str]:
    """The names in ``sys.modules`` after a fresh interpreter, run from the repository root with
    it on the path, has executed ``script``."""
    report = "\nimport sys as _sys\nprint('\\n'.join(sorted(_sys.modules)), file=_sys.stderr)\n"
    completed = subprocess.run(
        [sys.executable, "-c", script + report],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        check=True,
    )
    return set(completed.stderr.split())
