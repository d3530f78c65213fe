"""The figure of the regime map (study 1), drawn from the result alone."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from experiments.synthetic.regime_map.comparisons import Row

SYMBOLS = {"better": "-", "worse": "+", "no difference": "0"}
MARKS = {
    "held": "\u2713",
    "contradicted": "\u2717",
    "off in size": "~",
    "inconclusive": "?",
    "diverged": "!",
}


def plot(result: dict, directory: Path) -> list[Path]:
    """Heat maps of the measured ``CORE-MTL - best balancer`` (worst-case shift of the headline
    size, training-domain selection) per cell, one panel per model, optimiser and run length;
    each cell marked with its diagnosis (held, contradicted, off in size, inconclusive, diverged)
    and the predicted sign (- better, + worse, 0 none)."""
    from experiments.synthetic.plotting import new_figure, save_figure

    deltas = result["config"]["deltas"]
    delta = 1.0 if 1.0 in deltas else deltas[0]
    rows = [
        row
        for row in map(Row.from_dict, result["summary"]["rows"])
        if row.variant == "core-mtl"
        and row.baseline == "best"
        and row.direction == "worst"
        and row.delta == delta
    ]
    panels = list(dict.fromkeys((r.model, r.optimiser, r.length) for r in rows))
    figure, axes = new_figure(4, math.ceil(len(panels) / 4), width=3.6, height=3.0)
    for axis, panel in zip(axes.flat, panels, strict=False):
        chosen = [r for r in rows if (r.model, r.optimiser, r.length) == panel]
        variances = sorted({r.cell.v for r in chosen})
        columns = sorted({(r.cell.correlation.strength, r.cell.start) for r in chosen}, key=str)
        grid = np.full((len(variances), len(columns)), np.nan)
        place = {
            id(r): (
                variances.index(r.cell.v),
                columns.index((r.cell.correlation.strength, r.cell.start)),
            )
            for r in chosen
        }
        for r in chosen:
            grid[place[id(r)]] = r.difference.mean
        limit = np.nanmax(np.abs(grid)) if np.isfinite(grid).any() else 1.0
        limit = limit or 1.0
        for r in chosen:
            i, j = place[id(r)]
            dark = abs(grid[i, j]) > 0.6 * limit
            mark = MARKS[r.diagnosis] + SYMBOLS[r.prediction]
            axis.text(j, i, mark, ha="center", va="center", fontsize=7, color="w" if dark else "k")
        image = axis.imshow(grid, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
        axis.set_xticks(range(len(columns)), ["\n".join(map(str, c)) for c in columns], fontsize=6)
        axis.set_yticks(range(len(variances)), [str(v) for v in variances])
        axis.set_ylabel("v (Sigma_S = v I)")
        axis.set_xlabel("rho, psi_0" if panel[0] == "A" else "rho, mixing")
        axis.set_title(f"model {panel[0]}, {panel[1]}, {panel[2]}", fontsize=8)
        axis.grid(False)
        figure.colorbar(image, ax=axis, shrink=0.8, label="CORE-MTL - best gap")
    for axis in list(axes.flat)[len(panels) :]:
        axis.set_visible(False)
    figure.suptitle(
        f"Study 1: CORE-MTL minus best balancer (validation-selected), worst-case shift "
        f"||dSigma||_F = {delta}; mark: held / contradicted / ~ off in size / ? inconclusive / "
        "! diverged, then the predicted sign",
        fontsize=8,
    )
    return save_figure(figure, directory, "study1_regime_map")
