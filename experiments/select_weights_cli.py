"""``coremtl select-weights``: run the procedure that chooses the default CORE-MTL weights.

Runs :mod:`experiments.synthetic.default_weights` in the chosen setting (``fast`` by default,
``--smoke`` or ``--full``) and writes one JSON record: every grid point's per-seed numbers, the
criterion, the winner, the configuration, the git commit and the versions. The library's
defaults (:mod:`coremtl.defaults`) are the winner of the record kept as
``docs/default_weights.json``; the command never edits them. An existing output file is
replaced only with ``--overwrite`` (the command refuses before training).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from coremtl.devices import check_device
from scm.validation import (
    OVERWRITE_RULE,
    check_output_path,
    check_positive_int,
    check_seed,
    refuse_to_overwrite,
)

DEFAULT_OUTPUT = Path("results/default_weights.json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = OVERWRITE_RULE
    setting = parser.add_mutually_exclusive_group()
    setting.add_argument(
        "--full", action="store_true", help="more seeds, more data, longer training"
    )
    setting.add_argument(
        "--smoke", action="store_true", help="tiny setting used by the test suite (seconds)"
    )
    parser.add_argument("--seed", type=int, default=0, help="first of the paired seeds")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (small models run best on 1)"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"JSON record (default {DEFAULT_OUTPUT})",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing record at --output"
    )


def run(args: argparse.Namespace) -> int:
    import torch

    from experiments.synthetic.default_weights import CONFIGS
    from experiments.synthetic.default_weights import run as select_weights
    from experiments.verify import git_commit, versions
    from experiments.verify_steps import write_json

    mode = "full" if args.full else "smoke" if args.smoke else "fast"
    device = check_device(args.device, "--device", available=True)
    check_positive_int(args.threads, "--threads")
    check_seed(args.seed, "--seed")
    check_output_path(args.output, "--output")
    if not args.overwrite:
        refuse_to_overwrite([args.output], "--output")
    torch.set_num_threads(args.threads)
    started = time.time()
    result = select_weights(CONFIGS[mode], args.seed, device, progress=True)
    record = {
        "command": "coremtl select-weights",
        "argv": sys.argv[1:],
        "mode": mode,
        "seed": args.seed,
        "device": device,
        "threads": args.threads,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "git_commit": git_commit(),
        "versions": versions(),
        **result,
        "seconds": time.time() - started,
    }
    write_json(args.output, record)
    for name in result["ranking"]:
        criterion = result["points"][name]["criterion"]
        print(f"  {name:<20} Delta_m vs EW {criterion['mean']:+7.2f} +- {criterion['se']:.2f} %")
    winner = result["winner"]
    print(
        f"winner: {winner['name']} (ties to the smaller weights); {record['seconds']:.0f} s; "
        f"wrote {args.output}"
    )
    return 0
