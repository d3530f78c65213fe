"""Figure output shared by the studies: Agg backend, one style, PNG and PDF side by side."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

plt.rcParams.update(
    {
        "figure.dpi": 110,
        "savefig.dpi": 150,
        "font.size": 9,
        "axes.titlesize": 9,
        "axes.labelsize": 9,
        "legend.fontsize": 7,
        "axes.grid": True,
        "grid.alpha": 0.3,
    }
)


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 4.2, height: float = 3.4):
    """A figure with ``nrows x ncols`` axes (always a 2-D array of axes)."""
    figure, axes = plt.subplots(
        nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, layout="constrained"
    )
    return figure, axes


METADATA = {".png": {"Software": None}, ".pdf": {"CreationDate": None, "Creator": None}}
"""No time stamp or version in the files, so that the same numbers give the same bytes."""


def save_figure(figure, directory: Path, stem: str) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf`` into ``directory`` and close the figure; the same figure
    gives byte-identical files (:data:`METADATA`)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"{stem}.png", directory / f"{stem}.pdf"]
    for path in paths:
        figure.savefig(path, metadata=METADATA[path.suffix])
    plt.close(figure)
    return paths


def colours(count: int) -> list:
    """``count`` distinguishable colours."""
    cmap = plt.get_cmap("tab10" if count <= 10 else "tab20")
    return [cmap(index % cmap.N) for index in range(count)]
