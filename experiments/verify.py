"""``coremtl verify``: the toolkit's main job.

Runs the statement certificates of ``coremtl prove`` in process, then the synthetic studies
(:data:`experiments.synthetic.STUDIES`) in the chosen setting, and writes

- the numbers and the full configuration (seeds, settings, versions) to a results JSON file,
- every figure (PNG and PDF) to the figures folder,
- a Markdown report (verdict table, one finding per study, the figures) next to the results file,
  and a copy with links relative to the figures folder there.

Settings: the default ``fast`` one (CPU, minutes), ``--full`` (paper-grade: more seeds, larger
models, longer training; meant for a GPU) and ``--smoke`` (tiny, for the test suite; same code path).
``--jobs N`` runs the proofs and the studies in ``N`` worker processes
(:mod:`experiments.verify_pool`) with the results of one process.

Nothing is overwritten silently: when the results file, its ``REPORT.md`` or figures in the figures
folder already exist, the command stops before running anything unless ``--overwrite`` is given
(``make verify`` passes it, so that it refreshes the reference ``figures/``). A partial run
(``--only`` a subset, or ``--no-proofs``) writes by default under ``results/partial/`` and never
into the reference ``figures/`` unless that folder is asked for with ``--figures``.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

from coremtl.devices import check_device
from experiments.verify_steps import (
    SMOKE_STATEMENTS,
    outcome_line,
    proof_result,
    record_proofs,
    study_result,
    write_json,
)
from scm.validation import (
    OVERWRITE_RULE,
    InvalidParameterError,
    check_output_path,
    check_positive_int,
    check_seed,
    refuse_to_overwrite,
)

DEFAULT_RESULTS = Path("results/verify.json")
DEFAULT_FIGURES = Path("figures")
SMOKE_RESULTS = Path("results/smoke/verify.json")
SMOKE_FIGURES = Path("results/smoke/figures")
PARTIAL_RESULTS = Path("results/partial/verify.json")
PARTIAL_FIGURES = Path("results/partial/figures")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        f"{OVERWRITE_RULE} A partial run (--only a subset, or --no-proofs) writes under "
        f"{PARTIAL_RESULTS.parent}/ by default, never into the reference {DEFAULT_FIGURES}/."
    )
    setting = parser.add_mutually_exclusive_group()
    setting.add_argument(
        "--full", action="store_true", help="paper-grade setting (more seeds, longer; for a GPU)"
    )
    setting.add_argument(
        "--smoke", action="store_true", help="tiny setting used by the test suite (< 60 s)"
    )
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0")
    parser.add_argument("--seed", type=int, default=0, help="first seed of every study")
    parser.add_argument(
        "--only", default=None, help="comma-separated study numbers to run, e.g. 1,4 (default all)"
    )
    parser.add_argument(
        "--no-proofs", action="store_true", help="skip the statement certificates (coremtl prove)"
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help=f"results JSON (default {DEFAULT_RESULTS}; {SMOKE_RESULTS} with --smoke; "
        f"{PARTIAL_RESULTS} for a partial run: --only a subset or --no-proofs)",
    )
    parser.add_argument(
        "--figures",
        type=Path,
        default=None,
        help=f"figures folder (default the reference {DEFAULT_FIGURES}/; {SMOKE_FIGURES}/ with "
        f"--smoke; {PARTIAL_FIGURES}/ for a partial run)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing results file, report and figures (without it the command "
        "refuses before running; make verify passes it to refresh the reference figures/)",
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (small models run best on 1)"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="worker processes (each with --threads threads): the proofs and the studies run "
        "side by side, and study 1's training jobs are spread over them; the results are those "
        "of one process",
    )


def parse_only(text: str | None, available: list[int]) -> list[int]:
    """The study numbers of ``--only`` (all of ``available`` when ``text`` is None)."""
    if text is None:
        return list(available)
    numbers: list[int] = []
    for piece in text.split(","):
        piece = piece.strip()
        if not piece.isdigit() or int(piece) not in available:
            raise InvalidParameterError(
                f"--only: expected comma-separated study numbers from {available}, got {text!r}"
            )
        if int(piece) not in numbers:
            numbers.append(int(piece))
    return sorted(numbers)


def output_paths(
    mode: str, partial: bool, results: Path | None, figures: Path | None
) -> tuple[Path, Path]:
    """The results file and figures folder: the ones given, else the defaults of ``mode``, with a
    partial run kept out of the reference ``figures/``."""
    if mode == "smoke":
        defaults = (SMOKE_RESULTS, SMOKE_FIGURES)
    elif partial:
        defaults = (PARTIAL_RESULTS, PARTIAL_FIGURES)
    else:
        defaults = (DEFAULT_RESULTS, DEFAULT_FIGURES)
    return results or defaults[0], figures or defaults[1]


def versions() -> dict[str, str]:
    """Versions of Python and of every library the studies use."""
    import importlib.metadata as metadata

    found = {"python": platform.python_version(), "platform": platform.platform()}
    for package in ("torch", "numpy", "scipy", "sympy", "pot", "torchjd", "matplotlib", "core-mtl"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def git_commit() -> str:
    """The commit of the working tree (read-only query), or ``unknown``."""
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return completed.stdout.strip() or "unknown"


def stage(index: int, total: int, text: str) -> None:
    print(f"[verify {index}/{total}] {text}", flush=True)


def run_serial(
    args: argparse.Namespace,
    mode: str,
    numbers: list[int],
    device: str,
    payload: dict,
    results_path: Path,
    total: int,
) -> int:
    """The proofs, then the studies one after the other in this process, rewriting the results
    file after each; returns the number of failures."""
    from experiments.synthetic import study

    index, failures = 0, 0
    if not args.no_proofs:
        index += 1
        stage(
            index,
            total,
            "proofs: statement certificates (coremtl prove)"
            + (f", smoke subset {', '.join(SMOKE_STATEMENTS)}" if mode == "smoke" else ""),
        )
        record_proofs(payload, proof_result(args.seed, mode))
        failures += "error" in payload["proofs"]
        write_json(results_path, payload)
    for number in numbers:
        index += 1
        chosen = study(number)
        stage(index, total, f"study {number}: {chosen.name} ({', '.join(chosen.statements)})")
        result = study_result(number, mode, args.seed, device)
        failures += result["verdict"] == "error"
        payload["studies"][str(number)] = result
        print(f"    {outcome_line(result)}", flush=True)
        write_json(results_path, payload)
    return failures


def run(args: argparse.Namespace) -> int:
    import torch

    from experiments import figures_cli, report
    from experiments.synthetic import STUDIES, study
    from experiments.synthetic.common import jsonable

    mode = "full" if args.full else "smoke" if args.smoke else "fast"
    numbers = parse_only(args.only, sorted(STUDIES))
    device = check_device(args.device, "--device", available=True)
    check_positive_int(args.threads, "--threads")
    check_positive_int(args.jobs, "--jobs")
    torch.set_num_threads(args.threads)
    partial = numbers != sorted(STUDIES) or args.no_proofs
    results_path, figures_dir = output_paths(mode, partial, args.results, args.figures)
    check_seed(args.seed, "--seed")
    check_output_path(results_path, "--results")
    check_output_path(results_path.parent / "REPORT.md", "--results")
    check_output_path(figures_dir, "--figures", folder=True)
    if not args.overwrite:
        earlier = [results_path, results_path.parent / "REPORT.md"]
        refuse_to_overwrite(
            [path for path in earlier if path.exists()] + figures_cli.figure_files(figures_dir),
            "--results/--figures",
        )
    started = time.time()
    payload: dict = {
        "configuration": {
            "mode": mode,
            "seed": args.seed,
            "device": device,
            "threads": args.threads,
            "jobs": args.jobs,
            "studies": numbers,
            "proofs": not args.no_proofs,
            "partial": partial,
            "argv": sys.argv[1:],
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
            "git_commit": git_commit(),
            "versions": versions(),
            "study_settings": {str(n): jsonable(study(n).configs[mode]) for n in numbers},
        },
        "proofs": None,
        "studies": {},
    }
    total = len(numbers) + (0 if args.no_proofs else 1) + 1
    if args.jobs > 1:
        from experiments.verify_pool import run_parallel

        failures = run_parallel(args, mode, numbers, device, payload, results_path)
    else:
        failures = run_serial(args, mode, numbers, device, payload, results_path, total)
    stage(total, total, f"figures and report -> {figures_dir}/, {results_path.parent}/REPORT.md")
    payload["runtime_seconds"] = time.time() - started
    write_json(results_path, payload)
    figures = figures_cli.render(payload, figures_dir)
    reports = report.write_reports(payload, figures, results_path, figures_dir)
    print(
        f"wrote {results_path}, {', '.join(str(p) for p in reports)} "
        f"and {sum(len(p) for p in figures.values())} figure files "
        f"in {payload['runtime_seconds']:.0f} s",
        flush=True,
    )
    return 1 if failures else 0
