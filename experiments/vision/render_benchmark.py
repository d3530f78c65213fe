"""Rendering scenes on the fly against loading the same samples from ``.npy`` files.

For each resolution, ``n`` samples (all six fields) are written to a temporary folder; then every
source is read through the path the trainers use, a ``DataLoader`` with ``batch_sampler`` set to
the same index lists of ``BATCH`` samples (default collation, no worker process), and timed:

- ``load``: ``np.load`` of the six files of every sample into channels-first tensors, the least
  any ``.npy`` loader must do;
- ``pipeline``: the vision pipeline's checked loader (:mod:`experiments.vision.datasets.npy`);
- ``render``: :class:`experiments.vision.scenes.RenderedScenes`, which the loader asks for a whole
  batch at once through ``__getitems__``;
- ``one by one``: the same dataset behind a wrapper without ``__getitems__``, so the loader asks
  for one sample at a time.

The repetitions are interleaved (one of each source per round) and the best time of each is kept,
so a load on the machine that drifts during the run affects all sources alike. Printed: images
per second and the ratio ``render time / load time`` (target: at most 3 for batched rendering).
Everything runs on one CPU thread, as in a ``DataLoader`` worker (torch uses one thread per
worker).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

BATCH = 32
SOURCES = ("load", "pipeline", "render", "one_by_one")
TARGET_RATIO = 3.0


class NpyFiles:
    """The six ``.npy`` files of each sample, loaded into channels-first tensors (a ``Dataset``)."""

    def __init__(self, folder: Path, n: int) -> None:
        from experiments.vision.scenes.writer import FOLDERS

        self.folder = folder
        self.n = n
        self.fields = FOLDERS

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict:
        import numpy as np
        import torch

        sample = {}
        for key, name in self.fields.items():
            tensor = torch.from_numpy(np.load(self.folder / name / f"{index}.npy"))
            sample[key] = tensor.permute(2, 0, 1) if tensor.ndim == 3 else tensor
        sample["depth"] = sample["depth"][None]
        return sample


class OneByOne:
    """``dataset`` without ``__getitems__``: a ``DataLoader`` fetches its samples one by one."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        return self.dataset[index]


def batches(n: int) -> list[list[int]]:
    """The index lists of ``n`` samples in batches of :data:`BATCH`, as a trainer's sampler."""
    return [list(range(start, min(start + BATCH, n))) for start in range(0, n, BATCH)]


def read_all(dataset, n: int) -> int:
    """Iterate once over ``dataset`` through a ``DataLoader`` with the batches of :func:`batches`;
    return the number of samples seen."""
    from torch.utils.data import DataLoader

    return sum(len(batch["image"]) for batch in DataLoader(dataset, batch_sampler=batches(n)))


def best_times(functions: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Best wall time of each function over ``repeats`` interleaved rounds."""
    best = dict.fromkeys(functions, float("inf"))
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def compare(size: int, n: int, repeats: int, device: str) -> dict:
    """One resolution: the time of every source of :data:`SOURCES` over the same ``n`` samples."""
    import torch

    from experiments.vision.datasets.npy import MultiTaskNpyDataset
    from experiments.vision.scenes import RenderedScenes, SceneConfig, write_split

    rendered = RenderedScenes(
        n, split="train", config=SceneConfig(resolution=(size, size)), device=device
    )
    with tempfile.TemporaryDirectory() as root:
        folder = write_split(
            root, "train", n, rendered.environment, config=rendered.config, progress=False
        )
        pipeline = MultiTaskNpyDataset(
            root, "train", ["segmentation", "depth", "normal"], rendered.num_classes
        )
        datasets = {
            "load": NpyFiles(folder, n),
            "pipeline": pipeline,
            "render": rendered,
            "one_by_one": OneByOne(rendered),
        }
        for name, dataset in datasets.items():
            if read_all(dataset, n) != n:
                raise RuntimeError(f"{name}: the loader did not return {n} samples")
        times = best_times(
            {name: (lambda d=dataset: read_all(d, n)) for name, dataset in datasets.items()},
            repeats,
        )
    row = {"resolution": size, "n": n, "batch": BATCH, "threads": torch.get_num_threads()}
    row.update({f"{name}_images_per_s": n / times[name] for name in SOURCES})
    row["render_over_load"] = times["render"] / times["load"]
    row["render_over_pipeline"] = times["render"] / times["pipeline"]
    row["one_by_one_over_load"] = times["one_by_one"] / times["load"]
    return row


def print_table(rows: list[dict]) -> None:
    header = (
        f"{'size':>7} {'n':>5} {'load':>8} {'pipeline':>9} {'render':>8} {'one-by-1':>9} "
        f"{'render/load':>12} {'render/pipeline':>16} {'one-by-1/load':>14}"
    )
    print("images per second (DataLoader, batch_sampler of", BATCH, "indices, 1 thread)")
    print(header)
    for row in rows:
        size = f"{row['resolution']}x{row['resolution']}"
        print(
            f"{size:>7} {row['n']:>5} {row['load_images_per_s']:8.0f} "
            f"{row['pipeline_images_per_s']:9.0f} {row['render_images_per_s']:8.0f} "
            f"{row['one_by_one_images_per_s']:9.0f} {row['render_over_load']:12.2f} "
            f"{row['render_over_pipeline']:16.2f} {row['one_by_one_over_load']:14.2f}"
        )
    print(f"target: render/load <= {TARGET_RATIO:g} (time ratios; lower is faster rendering)")


def main(args) -> dict:
    """Time ``n = 256`` samples (32 with ``--quick``) at 64x64 and 128x128 on ``args.device``,
    with torch limited to one thread."""
    import torch

    n = 32 if args.quick else 256
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = [compare(size, n, args.repeats, args.device) for size in (64, 128)]
    finally:
        torch.set_num_threads(threads)
    print_table(rows)
    return {"rows": rows, "target_render_over_load": TARGET_RATIO}
