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

from scm.validation import (
    OVERWRITE_RULE,
    InvalidParameterError,
    check_output_path,
    refuse_to_overwrite,
)

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


def render(payload: dict, directory: Path, strict: bool = False) -> dict[str, list[Path]]:
    """Every study's figures from its entry in ``payload['studies']``; studies that raised an
    error have none. A figure that fails to draw is reported on stderr and skipped, or, with
    ``strict`` (a results file given to ``coremtl figures``), refused in one line naming the
    study."""
    from experiments.synthetic import study

    figures: dict[str, list[Path]] = {}
    for key, result in sorted(payload.get("studies", {}).items(), key=lambda item: int(item[0])):
        if "error" in result:
            figures[key] = []
            continue
        try:
            figures[key] = study(int(key)).plot(result, Path(directory))
        except Exception as error:
            if strict:
                raise InvalidParameterError(
                    f"--results: study {key}'s entry cannot be drawn, it is not the shape its "
                    f"study writes ({type(error).__name__}: {error})"
                ) from None
            print(
                f"figures: study {key} could not be drawn:\n{traceback.format_exc()}",
                file=sys.stderr,
            )
            figures[key] = []
    return figures


def load_results(path: Path) -> dict:
    """The results JSON at ``path``, checked to be a ``coremtl verify`` results file: objects
    ``configuration`` and ``studies``, the latter keyed by study numbers."""
    from experiments.synthetic import STUDIES

    if not path.is_file():
        raise FileNotFoundError(f"--results: no results file at {path} (run coremtl verify first)")
    try:
        payload = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidParameterError(f"--results: {path} is not valid JSON ({error})") from None
    if (
        not isinstance(payload, dict)
        or not isinstance(payload.get("studies"), dict)
        or not isinstance(payload.get("configuration"), dict)
    ):
        raise InvalidParameterError(
            f"--results: {path} is not a coremtl verify results file (expected the objects "
            "'studies' and 'configuration')"
        )
    for key, result in payload["studies"].items():
        if not (key.isdigit() and int(key) in STUDIES and isinstance(result, dict)):
            raise InvalidParameterError(
                f"--results: {path}: studies[{key!r}] is not a study's entry (expected a study "
                f"number among {sorted(STUDIES)} holding an object)"
            )
    if not isinstance(payload["configuration"].get("versions", {}), dict):
        raise InvalidParameterError(f"--results: {path}: configuration.versions is not an object")
    return payload


def run(args: argparse.Namespace) -> int:
    from experiments import report

    payload = load_results(args.results)
    check_output_path(args.figures, "--figures", folder=True)
    if not args.overwrite:
        refuse_to_overwrite(figure_files(args.figures), "--figures")
    figures = render(payload, args.figures, strict=True)
    path = args.figures / "REPORT.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report.render_report(payload, figures, args.figures))
    count = sum(len(paths) for paths in figures.values())
    print(f"wrote {count} figure files and {path} to {args.figures}/")
    return 0
