"""Study 7's figure: the expected gradient on psi of the task loss and of the input-level swap."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot(result: dict, directory: Path) -> list[Path]:
    from experiments.synthetic.plotting import colours, new_figure, save_figure

    figure, axes = new_figure(2, 1, width=4.4)
    grid = np.asarray(result["measurements"]["grid"])
    variances = result["config"]["variances"]
    palette = colours(len(variances))
    for column, heads in enumerate(("fixed", "optimal")):
        axis = axes[0, column]
        for colour, v in zip(palette, variances, strict=True):
            for variant, style in (("task", "-"), ("input", "--")):
                axis.plot(
                    grid,
                    result["measurements"]["curves"][f"{variant}|v={v}|{heads}"],
                    style,
                    color=colour,
                    label=f"{variant} (= tied), v={v}"
                    if variant == "task"
                    else f"input-level swap, v={v}",
                )
        if heads == "fixed":
            for colour, v in zip(palette, variances, strict=True):
                points = [
                    r for r in result["measurements"]["rows"] if r["v"] == v and r["mu"] == 0.0
                ]
                for variant, marker in (("tied", "o"), ("input", "x"), ("feature", "s")):
                    chosen = [r for r in points if r["variant"] == variant]
                    axis.errorbar(
                        [r["psi"] for r in chosen],
                        [r["derived_on_batch"] for r in chosen],
                        yerr=[2 * r["standard_error"] for r in chosen],
                        fmt=marker,
                        color=colour,
                        ms=4,
                        alpha=0.7,
                    )
        w, b = result["config"]["head"]
        axis.set_title(
            "Open question (S4): swap gradient on psi, "
            + (f"head w={w}, b={b}" if heads == "fixed" else "optimal heads")
        )
        axis.set_xlabel("psi (rad)")
        axis.set_ylabel("E[dL/dpsi] (squared-error units per rad)")
        axis.legend(ncol=1)
    return save_figure(figure, directory, "study7_swap_gradient")
