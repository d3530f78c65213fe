"""``coremtl shortcuts``: run the shortcut suite (study 9) on the benchmarks and methods you choose.

``coremtl verify`` runs the suite in its fast setting (every method on ``scenes/hue`` and
``digits/colour``); this command runs any subset of the benchmarks and methods of
:mod:`experiments.synthetic.shortcuts` at the sizes of a setting (``fast`` by default, ``--smoke``
or ``--full``), e.g. the texture and position nuisances of the full setting at the fast sizes::

    coremtl shortcuts --benchmarks digits/texture,digits/position --jobs 2

It writes one JSON record (the study's result: configuration, registered predictions with their
time stamp, every run, the summary, the verdicts, plus the command, commit and versions) and
prints the finding. An existing record is replaced only with ``--overwrite`` (refused before any
training).
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
    parser.add_argument("--seed", type=int, default=0, help="first of the paired seeds")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per worker")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes for the runs")
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"JSON record (default {DEFAULT_OUTPUT})",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing record at --output"
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
    from experiments.verify_steps import write_json

    device = check_device(args.device, "--device", available=True)
    check_positive_int(args.threads, "--threads")
    check_positive_int(args.jobs, "--jobs")
    check_seed(args.seed, "--seed")
    mode, config = config_of(args)
    check_output_path(args.output, "--output")
    if not args.overwrite:
        refuse_to_overwrite([args.output], "--output")
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
    write_json(args.output, record)
    finding = result["finding"]
    print(f"{result['verdict']}: {finding['result']}")
    print(f"{record['seconds']:.0f} s; wrote {args.output}")
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
