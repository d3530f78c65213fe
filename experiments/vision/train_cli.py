"""``coremtl train --config FILE``: train a vision model (CORE-MTL or a baseline) from a YAML config.

Distributed: ``torchrun --nproc_per_node N -m coremtl.cli train --config FILE`` (NCCL on GPUs,
gloo on CPU). Outputs in ``run.output_dir``: ``config.json``, ``metrics.jsonl`` (one record per
epoch), ``final_metrics.json``, ``checkpoints/{last,best}.pt`` and ``images/*.png``.
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
        "--resume", action="store_true", help="continue from <output>/checkpoints/last.pt"
    )


def run(args: argparse.Namespace) -> int:
    import json

    from . import distributed
    from .config import load_config
    from .images import write_sample_images
    from .training import build_run, train

    overrides = list(args.set)
    if args.output is not None:
        overrides.append(f"run.output_dir={args.output}")
    config = load_config(args.config, overrides)
    distributed.init_from_environment(config.run.device)
    config.run.device = distributed.local_device(config.run.device)
    vision_run = build_run(config)
    report = train(vision_run, resume=args.resume)
    if distributed.rank() == 0:
        write_sample_images(vision_run, vision_run.output / "images")
        print(json.dumps(report, indent=2))
    return 0
