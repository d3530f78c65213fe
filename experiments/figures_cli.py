"""``coremtl figures``: redraw every figure (and the report) from a results file, without training.

It writes the figures and a ``REPORT.md`` linking them into ``--figures`` only (the results file and
the report beside it are left as they are); when that folder holds a report or figures already it
refuses unless ``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

from scm.validation import OVERWRITE_RULE, InvalidParameterError, refuse_to_overwrite

RESULT_PATTERNS = ("REPORT.md", "*.png", "*.pdf")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = OVERWRITE_RULE
    parser.add_argument(
        "--results",
        type=Path,
        default=Path("results/verify.json"),
        help="results JSON written by coremtl verify",
    )
    parser.add_argument(
        "--figures",
        type=Path,
        default=Path("figures"),
        help="output folder (default the reference figures/)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the existing figures and reports (without it the command refuses)",
    )


def figure_files(figures_dir: Path) -> list[Path]:
    """The report and figures already in ``figures_dir``."""
    if not figures_dir.is_dir():
        return []
    return [path for pattern in RESULT_PATTERNS for path in sorted(figures_dir.glob(pattern))]


def render(payload: dict, directory: Path) -> dict[str, list[Path]]:
    """Every study's figures from its entry in ``payload['studies']``; studies that raised an
    error have none. A figure that fails to draw is reported on stderr and skipped."""
    from experiments.synthetic import study

    figures: dict[str, list[Path]] = {}
    for key, result in sorted(payload.get("studies", {}).items(), key=lambda item: int(item[0])):
        if "error" in result:
            figures[key] = []
            continue
        try:
            figures[key] = study(int(key)).plot(result, Path(directory))
        except Exception:
            print(
                f"figures: study {key} could not be drawn:\n{traceback.format_exc()}",
                file=sys.stderr,
            )
            figures[key] = []
    return figures


def load_results(path: Path) -> dict:
    """The results JSON at ``path``, checked to be a ``coremtl verify`` results file."""
    if not path.is_file():
        raise FileNotFoundError(f"--results: no results file at {path} (run coremtl verify first)")
    try:
        payload = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise InvalidParameterError(f"--results: {path} is not valid JSON ({error})") from None
    if not isinstance(payload, dict) or "studies" not in payload or "configuration" not in payload:
        raise InvalidParameterError(
            f"--results: {path} is not a coremtl verify results file (no 'studies'/'configuration')"
        )
    return payload


def run(args: argparse.Namespace) -> int:
    from experiments import report

    payload = load_results(args.results)
    if not args.overwrite:
        refuse_to_overwrite(figure_files(args.figures), "--figures")
    figures = render(payload, args.figures)
    path = args.figures / "REPORT.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report.render_report(payload, figures, args.figures))
    count = sum(len(paths) for paths in figures.values())
    print(f"wrote {count} figure files and {path} to {args.figures}/")
    return 0
