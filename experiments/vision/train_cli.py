"""``coremtl train --config FILE``: train a vision model (CORE-MTL or a baseline) from a YAML config.

Distributed: ``torchrun --nproc_per_node N -m coremtl_cli train --config FILE`` (NCCL on GPUs,
gloo on CPU). Outputs in ``run.output_dir``: ``config.json``, ``metrics.jsonl`` (one row per
step), ``epochs.jsonl`` (one record per epoch), ``final_metrics.json``,
``checkpoints/{last,best}.pt`` and ``images/*.png``.

``--single-task-references`` trains instead one single-task model per task of the config, in
``<run.output_dir>/single_task/<task>/``, and writes their test metrics (checkpoints selected on
validation) to ``<run.output_dir>/single_task_reference.json``, which a multi-task run reads as
``run.single_task_reference_file`` for ``Delta_m`` (:mod:`experiments.vision.single_task`: the
file wins over inline ``run.single_task_reference`` values; the source of every reference number
is printed before training and recorded in ``final_metrics.json``).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="YAML run configuration")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set training.balancer=pcgrad (repeatable)",
    )
    parser.add_argument("--output", type=Path, default=None, help="overrides run.output_dir")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from <output>/checkpoints/last.pt (refused when it is missing or when the "
        "configuration differs from the run's config.json)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier run in the output folder (without it, such a folder is refused)",
    )
    parser.add_argument(
        "--single-task-references",
        action="store_true",
        help="train one single-task model per task of the config and write "
        "<output>/single_task_reference.json (for run.single_task_reference_file)",
    )


def run(args: argparse.Namespace) -> int:
    import json

    from coremtl import distributed
    from scm.validation import check_output_path

    from .config import load_config
    from .images import write_sample_images
    from .single_task import train_single_task_references
    from .training import build_run, train

    overrides = list(args.set)
    if args.output is not None:
        overrides.append(f"run.output_dir={args.output}")
    config = load_config(args.config, overrides)
    check_output_path(config.run.output_dir, "run.output_dir (--output)", folder=True)
    distributed.init_from_environment(config.run.device)
    config.run.device = distributed.local_device(config.run.device)
    if args.single_task_references:
        path, reference = train_single_task_references(
            config, resume=args.resume, overwrite=args.overwrite
        )
        if distributed.is_main_process():
            print(json.dumps({"single_task_reference_file": str(path), "metrics": reference}))
        return 0
    vision_run = build_run(config)
    if distributed.is_main_process():
        print(vision_run.reference.describe(), flush=True)
    report = train(vision_run, resume=args.resume, overwrite=args.overwrite)
    if distributed.is_main_process():
        write_sample_images(vision_run, vision_run.output / "images")
        print(json.dumps(report, indent=2))
    return 0
