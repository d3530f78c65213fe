"""``coremtl shortcuts``: run the shortcut suite (study 9) on the benchmarks and methods you choose.

``coremtl verify`` runs the suite in its fast setting (every method on ``scenes/hue`` and
``digits/colour``); this command runs any subset of the benchmarks and methods of
:mod:`experiments.synthetic.shortcuts` at the sizes of a setting (``fast`` by default, ``--smoke``
or ``--full``), e.g. the texture and position nuisances of the full setting at the fast sizes::

    coremtl shortcuts --benchmarks digits/texture,digits/position --jobs 2

It writes one JSON record (the study's result: configuration, registered predictions with their
time stamp, every run, the summary, the verdicts, plus the command, commit and versions) and
prints the finding; ``--figures DIR`` also draws the suite's figures and writes its report section
there. ``--combine A.json B.json ...`` reads records of the same setting run apart (e.g. one
benchmark at a time) as one: it merges their runs and summarises, scores and concludes them again,
without training. An existing record or figure is replaced only with ``--overwrite`` (refused
before any work).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

from coremtl.devices import check_device
from scm.validation import (
    OVERWRITE_RULE,
    InvalidParameterError,
    check_output_path,
    check_positive_int,
    check_seed,
    refuse_to_overwrite,
)

DEFAULT_OUTPUT = Path("results/shortcuts.json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = OVERWRITE_RULE
    setting = parser.add_mutually_exclusive_group()
    setting.add_argument("--full", action="store_true", help="the full setting's sizes and seeds")
    setting.add_argument("--smoke", action="store_true", help="the test suite's tiny setting")
    parser.add_argument(
        "--benchmarks",
        help="comma-separated benchmarks, e.g. digits/texture,scenes/hue (default: the setting's)",
    )
    parser.add_argument(
        "--methods", help="comma-separated method names of the suite (default: every method)"
    )
    parser.add_argument("--seeds", type=int, help="paired seeds (default: the setting's)")
    parser.add_argument("--seed", type=int, help="first of the paired seeds (default 0)")
    parser.add_argument("--device", help="torch device, e.g. cpu or cuda:0 (default cpu)")
    parser.add_argument("--threads", type=int, help="torch CPU threads per worker (default 1)")
    parser.add_argument("--jobs", type=int, help="worker processes for the runs (default 1)")
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"JSON record (default {DEFAULT_OUTPUT})",
    )
    parser.add_argument(
        "--figures", type=Path, help="also draw the figures and write REPORT.md into this folder"
    )
    parser.add_argument(
        "--combine",
        type=Path,
        nargs="+",
        metavar="RECORD",
        help="read these records of one setting as one (no training)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing record or figures"
    )


def _names(text: str | None, option: str) -> tuple[str, ...] | None:
    if text is None:
        return None
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise InvalidParameterError(f"{option}: expected comma-separated names, got {text!r}")
    return names


def config_of(args: argparse.Namespace):
    """The suite's configuration: the setting's, with the chosen benchmarks, methods and seeds."""
    from experiments.synthetic.shortcuts.study import CONFIGS, benchmark_of

    mode = "full" if args.full else "smoke" if args.smoke else "fast"
    config = CONFIGS[mode]
    changes = {}
    benchmarks = _names(args.benchmarks, "--benchmarks")
    if benchmarks is not None:
        for key in benchmarks:
            benchmark_of(key)
        changes["benchmarks"] = benchmarks
    methods = _names(args.methods, "--methods")
    if methods is not None:
        changes["methods"] = methods
    if args.seeds is not None:
        changes["seeds"] = check_positive_int(args.seeds, "--seeds")
    return mode, replace(config, **changes)


def run(args: argparse.Namespace) -> int:
    import torch

    from experiments.synthetic.shortcuts.study import STUDY
    from experiments.verify import git_commit, versions

    check_output_path(args.output, "--output")
    if args.figures is not None:
        check_output_path(args.figures / "REPORT.md", "--figures")
    if not args.overwrite:
        refuse_to_overwrite([args.output, *_figure_paths(args.figures)], "--output or --figures")
    if args.combine:
        return _combine(args)
    defaults = {"seed": 0, "device": "cpu", "threads": 1, "jobs": 1}
    for option, value in defaults.items():
        if getattr(args, option) is None:
            setattr(args, option, value)
    device = check_device(args.device, "--device", available=True)
    check_positive_int(args.threads, "--threads")
    check_positive_int(args.jobs, "--jobs")
    check_seed(args.seed, "--seed")
    mode, config = config_of(args)
    torch.set_num_threads(args.threads)
    started = time.time()
    if args.jobs == 1:
        result = STUDY.run(config, args.seed, device, progress=True)
    else:
        result = _run_on_workers(config, args, device)
    record = {
        "command": "coremtl shortcuts",
        "argv": sys.argv[1:],
        "mode": mode,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "git_commit": git_commit(),
        "versions": versions(),
        **result,
        "seconds": time.time() - started,
    }
    _write(record, args)
    print(f"{record['seconds']:.0f} s of runs")
    return 0


def _figure_paths(folder: Path | None) -> list[Path]:
    if folder is None:
        return []
    from experiments.synthetic.shortcuts.plot import FIGURES

    return [folder / "REPORT.md", *(folder / f"{n}{s}" for n in FIGURES for s in (".png", ".pdf"))]


def _write(record: dict, args: argparse.Namespace) -> None:
    """The record at ``--output``; with ``--figures``, the figures and the report section."""
    from experiments.verify_steps import write_json

    write_json(args.output, record)
    print(f"{record['verdict']}: {record['finding']['result']}")
    print(f"wrote {args.output}")
    if args.figures is None:
        return
    from experiments.report import study_section
    from experiments.synthetic.shortcuts.study import STUDY

    args.figures.mkdir(parents=True, exist_ok=True)
    figures = STUDY.plot(record, args.figures)
    section = study_section("9", {**record, **STUDY.identity()}, figures, args.figures)
    header = [
        "# The shortcut suite",
        "",
        f"`{record['command']}`, setting **{record['mode']}**, commit `{record['git_commit']}`, "
        f"{record['seconds']:.0f} s of runs; the record: `{args.output}`.",
        "",
    ]
    (args.figures / "REPORT.md").write_text("\n".join([*header, *section]).rstrip("\n") + "\n")
    print(f"wrote {args.figures / 'REPORT.md'} and {len(figures)} figure files")


def _load_record(path: Path) -> dict:
    import json

    if not path.is_file():
        raise InvalidParameterError(f"--combine: {path} is not a file")
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidParameterError(f"--combine: {path} is not JSON ({error})") from None
    if not isinstance(record, dict) or not str(record.get("command", "")).startswith(
        "coremtl shortcuts"
    ):
        raise InvalidParameterError(f"--combine: {path} is not a record of coremtl shortcuts")
    missing = [key for key in ("config", "registration", "measurements") if key not in record]
    runs = {} if missing else record["measurements"]
    if missing or not isinstance(runs, dict) or not isinstance(runs.get("records"), list):
        raise InvalidParameterError(
            f"--combine: {path} lacks {', '.join(missing) or 'measurements.records'}; "
            "expected a whole record of coremtl shortcuts"
        )
    return record


def _combine(args: argparse.Namespace) -> int:
    """Merge records of one setting (same sizes, methods, seeds, strength and sweep; disjoint
    benchmarks) and conclude their runs again as one study."""
    from experiments.synthetic.shortcuts.study import STUDY, config_from_dict
    from experiments.verify import git_commit, versions

    running = (
        "full",
        "smoke",
        "benchmarks",
        "methods",
        "seeds",
        "seed",
        "device",
        "threads",
        "jobs",
    )
    for option in running:
        if getattr(args, option) not in (None, False):
            raise InvalidParameterError(
                f"--{option}: --combine reads the records' own settings and runs nothing; "
                "leave it out"
            )
    records = [_load_record(path) for path in args.combine]
    first = records[0]["config"]
    benchmarks: list[str] = []
    for path, record in zip(args.combine, records, strict=True):
        other = record["config"]
        differing = sorted(k for k in first if k != "benchmarks" and other.get(k) != first[k])
        if differing or record.get("mode") != records[0].get("mode"):
            raise InvalidParameterError(
                f"--combine: {path} is of another setting than {args.combine[0]} "
                f"(differs in {', '.join(differing) or 'mode'})"
            )
        repeated = sorted(set(other["benchmarks"]) & set(benchmarks))
        if repeated:
            raise InvalidParameterError(f"--combine: {path} repeats benchmarks {repeated}")
        benchmarks += other["benchmarks"]
    try:
        config = config_from_dict({**first, "benchmarks": benchmarks})
    except InvalidParameterError as error:
        raise InvalidParameterError(f"--combine: {args.combine[0]}: {error}") from None
    measurements = {"records": [run for r in records for run in r["measurements"]["records"]]}
    registration = [r["registration"] for r in records]
    result = STUDY.conclude_measurements(config, measurements, registration)
    record = {
        "command": "coremtl shortcuts --combine",
        "argv": sys.argv[1:],
        "mode": records[0].get("mode"),
        "combined": [
            {"path": str(path), "git_commit": r.get("git_commit"), "seconds": r.get("seconds")}
            for path, r in zip(args.combine, records, strict=True)
        ],
        "git_commit": git_commit(),
        "versions": versions(),
        **result,
        "seconds": sum(float(r.get("seconds") or 0.0) for r in records),
    }
    _write(record, args)
    return 0


def _run_on_workers(config, args: argparse.Namespace, device: str) -> dict:
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from experiments.synthetic.shortcuts.study import STUDY
    from experiments.verify_pool import map_jobs, start_worker

    with ProcessPoolExecutor(
        args.jobs,
        mp_context=get_context("spawn"),
        initializer=start_worker,
        initargs=(args.threads,),
    ) as pool:
        return STUDY.run(config, args.seed, device, mapper=lambda jobs: map_jobs(pool, jobs))
