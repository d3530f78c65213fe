"""A quick check of CORE-MTL with soft against hard grounding on study 9's scenes (not the study).

Per seed, the data of study 9 (:func:`experiments.synthetic.shortcut_scenes.render`: 32x32
scenes, segmentation and depth, source shortcut ``p``) and its conv backbone (three 3x3
conv-BN-ReLU layers, output stride 4, streams 16 + 8 channels) go through :func:`coremtl.train`
with the library's defaults (weights, schedule, optimiser), once per method: ``ew``, CORE-MTL with
``grounding="soft"`` and with ``grounding="hard"``. Measured: the wall and CPU time of
``coremtl.train`` (one thread),
the source-validation mIoU (the only split any choice could be made on; nothing is chosen here),
the random-hue target-test mIoU (reported, never used) and the probes of
:mod:`experiments.synthetic.shortcuts.hard_probes` on study 9's shortcut-free probe splits.
Differences hard minus soft are paired by seed, ``mean +- SE``.

``python -m experiments.synthetic.shortcuts.hard_check --seeds 5`` prints the JSON.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from torch import nn

from experiments.synthetic.shortcut_scenes import (
    TASKS,
    ShortcutSetup,
    render,
    scene_config,
    task_metrics,
)
from experiments.synthetic.shortcuts.hard_probes import hard_probes, probe_split

METHODS = {"EW": ("ew", {}), "soft": ("core-mtl", {"grounding": "soft"})}
METHODS["hard"] = ("core-mtl", {"grounding": "hard"})


def backbone(setup: ShortcutSetup, seed: int) -> nn.Sequential:
    """Study 9's encoder (:func:`experiments.synthetic.shortcut_scenes.build_model`)."""
    torch.manual_seed(seed)
    width, layers = setup.width, []
    for fan_in, stride in ((3, 2), (width, 2), (width, 1)):
        layers += [
            nn.Conv2d(fan_in, width, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
        ]
    return nn.Sequential(*layers)


def run_seed(setup: ShortcutSetup, seed: int, shortcut: float) -> dict[str, dict]:
    import coremtl

    num_classes = scene_config(setup, seed).num_classes
    tasks = [coremtl.Task("segmentation", "dense", num_classes), coremtl.Task("depth", "dense", 1)]
    train = render(setup, seed, "train", setup.train, shortcut)
    data = {"x": train["image"], **{task: train[task] for task in TASKS}}
    source_val = render(setup, seed, "val", setup.val, shortcut)
    target_test = render(setup, seed, "target_test", setup.test, None)
    fit = probe_split(setup, seed, "probe_fit", setup.probe)
    held_out = probe_split(setup, seed, "probe_eval", setup.probe)
    rows = {}
    for name, (method, options) in METHODS.items():
        begin, cpu_begin = time.perf_counter(), time.process_time()
        result = coremtl.train(
            method,
            backbone(setup, seed),
            tasks,
            data,
            epochs=setup.epochs,
            batch_size=setup.batch_size,
            learning_rate=setup.learning_rate,
            seed=seed,
            streams=(setup.semantic_channels, setup.residual_channels) if options else None,
            **options,
        )
        seconds = time.perf_counter() - begin
        cpu_seconds = time.process_time() - cpu_begin
        model = result.model.eval()
        row = {
            "seconds": seconds,
            "cpu_seconds": cpu_seconds,
            "source_val_miou": task_metrics(model, source_val, num_classes, "cpu")[
                "segmentation/miou"
            ],
            "target_test_miou": task_metrics(model, target_test, num_classes, "cpu")[
                "segmentation/miou"
            ],
        }
        if options:
            row.update(hard_probes(model, fit, held_out))
        rows[name] = row
    return rows


def summary(records: list[dict[str, dict]]) -> dict:
    """``mean +- SE`` of every measurement per method, and of hard minus soft paired by seed."""

    def mean_se(values: list[float]) -> dict:
        array = np.asarray(values, dtype=float)
        se = float(array.std(ddof=1) / np.sqrt(array.size)) if array.size > 1 else 0.0
        return {"mean": float(array.mean()), "se": se}

    out: dict = {}
    for name in METHODS:
        keys = records[0][name]
        out[name] = {key: mean_se([r[name][key] for r in records]) for key in keys}
    shared = set(records[0]["hard"]) & set(records[0]["soft"])
    out["hard - soft"] = {
        key: mean_se([r["hard"][key] - r["soft"][key] for r in records]) for key in sorted(shared)
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--shortcut", type=float, default=0.95)
    args = parser.parse_args()
    torch.set_num_threads(1)
    setup = ShortcutSetup()
    records = []
    for seed in range(args.seeds):
        records.append(run_seed(setup, seed, args.shortcut))
        print(json.dumps({"seed": seed, **records[-1]}), flush=True)
    print(json.dumps({"summary": summary(records)}, indent=1))


if __name__ == "__main__":
    main()
