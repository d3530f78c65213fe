"""Rendering scenes on the fly against loading the same samples from ``.npy`` files.

For each resolution, ``n`` samples (all six fields) are written to a temporary folder; then the
best of ``repeats`` timings of (a) ``np.load`` of the six files of every sample into channels-first
tensors (what any ``.npy`` loader must at least do) and (b) rendering the same samples with
:class:`experiments.vision.scenes.RenderedScenes`, in batches of 32 (``DataLoader`` with
``__getitems__``) and one by one (``__getitem__``). Printed: images per second and the ratio
``render time / load time`` (target: at most 3 for batched rendering). For reference, the
pipeline's own checked loader (``experiments.vision.datasets.npy``) is timed too when present. Both sides run on one CPU
thread, as in a ``DataLoader`` worker (torch uses one thread per worker).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

BATCH = 32


def _best_time(function, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def _load_all(folder: Path, n: int) -> None:
    import numpy as np
    import torch

    from experiments.vision.scenes.writer import FOLDERS

    for index in range(n):
        for name in FOLDERS.values():
            array = np.load(folder / name / f"{index}.npy")
            tensor = torch.from_numpy(array)
            if tensor.ndim == 3:
                tensor.permute(2, 0, 1).contiguous()


def _pipeline_loader(root: str, num_classes: int):
    """The vision pipeline's checked ``.npy`` loader over the written split, when it exists."""
    try:
        from experiments.vision.datasets.npy import MultiTaskNpyDataset
    except ImportError:
        return None
    return MultiTaskNpyDataset(root, "train", ["segmentation", "depth", "normal"], num_classes)


def _compare(size: int, n: int, args) -> dict:
    """One resolution: load, batched render and one-by-one render times of ``n`` samples."""
    import torch

    from experiments.vision.scenes import RenderedScenes, SceneConfig, write_split

    dataset = RenderedScenes(
        n, split="train", config=SceneConfig(resolution=(size, size)), device=args.device
    )
    with tempfile.TemporaryDirectory() as root:
        folder = write_split(
            root, "train", n, dataset.environment, config=dataset.config, progress=False
        )
        load = _best_time(lambda: _load_all(folder, n), args.repeats)
        pipeline = _pipeline_loader(root, dataset.num_classes)
        pipeline_load = (
            _best_time(lambda: [pipeline[i] for i in range(n)], args.repeats)
            if pipeline is not None
            else float("nan")
        )

    def render_batched() -> None:
        for start in range(0, n, BATCH):
            dataset.__getitems__(list(range(start, min(start + BATCH, n))))

    def render_single() -> None:
        for index in range(n):
            dataset[index]

    batched = _best_time(render_batched, args.repeats)
    single = _best_time(render_single, max(1, args.repeats // 2))
    row = {
        "resolution": size,
        "n": n,
        "threads": torch.get_num_threads(),
        "load_images_per_s": n / load,
        "render_batched_images_per_s": n / batched,
        "render_single_images_per_s": n / single,
        "pipeline_loader_images_per_s": n / pipeline_load,
        "batched_over_load_time": batched / load,
        "batched_over_pipeline_load_time": batched / pipeline_load,
        "single_over_load_time": single / load,
    }
    print(
        f"{size}x{size}, n={n}: load .npy {row['load_images_per_s']:7.0f} img/s | render "
        f"batched {row['render_batched_images_per_s']:7.0f} img/s "
        f"(time ratio {row['batched_over_load_time']:.2f}, target <= 3) | render one by one "
        f"{row['render_single_images_per_s']:7.0f} img/s "
        f"(time ratio {row['single_over_load_time']:.2f}) | pipeline .npy loader "
        f"{row['pipeline_loader_images_per_s']:7.0f} img/s "
        f"(batched render time ratio {row['batched_over_pipeline_load_time']:.2f})"
    )
    return row


def main(args) -> dict:
    """Time ``n = 256`` samples (32 with ``--quick``) at 64x64 and 128x128 on ``args.device``,
    with torch limited to one thread."""
    import torch

    n = 32 if args.quick else 256
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {"rows": [_compare(size, n, args) for size in (64, 128)]}
    finally:
        torch.set_num_threads(threads)
