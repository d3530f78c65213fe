"""``coremtl evaluate --checkpoint FILE``: metrics of a saved vision model on a split.

The checkpoint carries its run configuration; the data root, device and the split (``test``:
the reported split; ``val``: the validation split carved from training) can be changed.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True, help="best.pt or last.pt")
    parser.add_argument("--split", choices=("test", "val"), default="test")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="config override"
    )
    parser.add_argument("--output", type=Path, default=None, help="write the metrics as JSON")


def evaluate_checkpoint(checkpoint: Path, split: str = "test", overrides=()) -> dict:
    import json

    from coremtl.checkpoint import load_checkpoint, load_module_state

    from .config import VisionConfig, apply_override, from_dict
    from .datasets.builders import build_splits
    from .model.build import build_model
    from .training import evaluate

    state = load_checkpoint(checkpoint, map_location="cpu")
    if "config" not in state or "model" not in state:
        raise ValueError(f"checkpoint {checkpoint}: not a vision checkpoint (no config or model)")
    data = json.loads(state["config"])
    data["model"]["weights"] = "random"
    for override in overrides:
        apply_override(data, override)
    config = from_dict(VisionConfig, data)
    model, _ = build_model(config.model, config.data.tasks, config.data.num_classes)
    load_module_state(model, state["model"], checkpoint)
    import torch

    device = torch.device(config.run.device)
    model.to(device)
    splits = build_splits(config.data, config.run.seed)
    dataset = splits.test if split == "test" else splits.val
    return evaluate(model, dataset, config, device)


def run(args: argparse.Namespace) -> int:
    import json

    metrics = evaluate_checkpoint(args.checkpoint, args.split, args.set)
    text = json.dumps(metrics, indent=2)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
    print(text)
    return 0
