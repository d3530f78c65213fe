"""``coremtl evaluate --checkpoint FILE``: metrics of a saved vision model on a split.

The checkpoint carries its run configuration; the data root, device and the split (``test``:
the reported split; ``val``: the validation split carved from training) can be changed.
``--save-predictions DIR`` also writes every image's predictions in the ``.npy`` layout of the
data (:mod:`.datasets.npy`), named by the image's index in its split, so that any other metric can
be computed from them:

- ``DIR/label/<i>.npy``: ``H x W`` int64 classes (the arg-max of the logits),
- ``DIR/depth/<i>.npy``: ``H x W`` float32, in the encoding of the data (depth or inverse depth),
- ``DIR/normal/<i>.npy``: ``H x W x 3`` float32 unit normals,
- ``DIR/albedo/<i>.npy``, ``DIR/shading/<i>.npy``: ``H x W x 3`` (rendered scenes),
- ``DIR/attributes.npy``: ``n x A`` in ``{-1, 1}`` (CelebA's convention; columns in the order of
  ``DIR/predictions.json``'s ``attributes``),

and ``DIR/predictions.json`` (checkpoint, split, count, tasks). Neither ``--output`` nor ``DIR`` is
overwritten unless ``--overwrite`` is given. The mIoU convention used
(``metrics.miou_convention``) is printed on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

PREDICTION_FOLDERS = {
    "segmentation": "label",
    "depth": "depth",
    "normal": "normal",
    "albedo": "albedo",
    "shading": "shading",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from scm.validation import OVERWRITE_RULE

    parser.epilog = OVERWRITE_RULE
    parser.add_argument("--checkpoint", type=Path, required=True, help="best.pt or last.pt")
    parser.add_argument("--split", choices=("test", "val"), default="test")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="config override"
    )
    parser.add_argument("--output", type=Path, default=None, help="write the metrics as JSON")
    parser.add_argument(
        "--save-predictions",
        type=Path,
        default=None,
        metavar="DIR",
        help="write per-image predictions to DIR/{label,depth,normal}/<i>.npy (the data's layout)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing --output or DIR"
    )


class PredictionWriter:
    """Writes each batch's predictions, image by image, under ``folder`` (module docstring)."""

    def __init__(self, folder: Path, dataset, attributes: list[str]) -> None:
        self.folder = Path(folder)
        self.indices = list(getattr(dataset, "indices", range(len(dataset))))
        self.attributes = attributes
        self.attribute_rows: list = []
        self.count = 0

    def __call__(self, predictions: dict) -> None:
        import numpy as np
        import torch

        batch_size = next(iter(predictions.values())).shape[0]
        names = self.indices[self.count : self.count + batch_size]
        for task, folder in PREDICTION_FOLDERS.items():
            if task not in predictions:
                continue
            values = predictions[task].detach().float().cpu()
            if task == "segmentation":
                arrays = values.argmax(dim=1).numpy().astype(np.int64)
            elif task == "depth":
                arrays = values[:, 0].numpy()
            else:
                if task == "normal":
                    values = torch.nn.functional.normalize(values, dim=1)
                arrays = values.permute(0, 2, 3, 1).numpy()
            (self.folder / folder).mkdir(parents=True, exist_ok=True)
            for name, array in zip(names, arrays, strict=True):
                np.save(self.folder / folder / f"{name}.npy", np.ascontiguousarray(array))
        if self.attributes:
            logits = torch.stack(
                [predictions[a].detach().float().cpu() for a in self.attributes], 1
            )
            self.attribute_rows.append(torch.where(logits > 0, 1, -1).numpy().astype(np.int8))
        self.count += batch_size

    def finish(self, checkpoint: Path, split: str, tasks: list[str]) -> None:
        import numpy as np

        self.folder.mkdir(parents=True, exist_ok=True)
        if self.attributes:
            np.save(self.folder / "attributes.npy", np.concatenate(self.attribute_rows))
        record = {
            "checkpoint": str(checkpoint),
            "split": split,
            "count": self.count,
            "tasks": tasks,
            "attributes": self.attributes,
            "indices": [int(i) for i in self.indices[: self.count]],
        }
        (self.folder / "predictions.json").write_text(json.dumps(record, indent=2))


def evaluate_checkpoint(
    checkpoint: Path, split: str = "test", overrides=(), predictions_dir: Path | None = None
) -> tuple[dict, str]:
    """The metrics of ``checkpoint`` on ``split`` and the mIoU convention they were computed with;
    with ``predictions_dir``, every image's predictions are written there too."""
    import torch

    from coremtl.checkpoint import load_checkpoint, load_module_state

    from .attributes import attribute_tasks
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
    model, _ = build_model(config)
    load_module_state(model, state["model"], checkpoint)
    device = torch.device(config.run.device)
    model.to(device)
    splits = build_splits(config.data, config.run.seed)
    dataset = splits.test if split == "test" else splits.val
    writer = None
    if predictions_dir is not None:
        writer = PredictionWriter(predictions_dir, dataset, attribute_tasks(config.data.tasks))
    metrics = evaluate(model, dataset, config, device, on_batch=writer)
    if writer is not None:
        writer.finish(checkpoint, split, list(config.data.tasks))
    return metrics, config.metrics.miou_convention


def run(args: argparse.Namespace) -> int:
    from scm.validation import check_output_path, refuse_to_overwrite

    from .metrics import MIOU_CONVENTIONS

    if args.output is not None:
        check_output_path(args.output, "--output")
    if args.save_predictions is not None:
        check_output_path(args.save_predictions, "--save-predictions", folder=True)
    if not args.overwrite:
        if args.output is not None:
            refuse_to_overwrite([args.output], "--output")
        folder = args.save_predictions
        if folder is not None and folder.is_dir() and any(folder.iterdir()):
            refuse_to_overwrite([folder], "--save-predictions")
    metrics, convention = evaluate_checkpoint(
        args.checkpoint, args.split, args.set, args.save_predictions
    )
    text = json.dumps(metrics, indent=2)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
    if "segmentation/miou" in metrics:
        print(
            f"segmentation/miou: metrics.miou_convention={convention}, "
            f"{MIOU_CONVENTIONS[convention]}",
            file=sys.stderr,
        )
    print(text)
    return 0
