"""Study 10's figure, drawn from the result dict alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot(result: dict, directory: Path) -> list[Path]:
    from experiments.synthetic.plotting import colours, new_figure, save_figure

    methods = result["summary"]["methods"]
    registered = result["registration"]["data"]
    names = list(methods)
    figure, axes = new_figure(2, 1, width=4.6)
    palette = colours(len(names))
    positions = np.arange(len(names))
    gap_axis, weight_axis = axes[0]
    gap_axis.bar(
        positions,
        [methods[m]["gap"]["mean"] for m in names],
        yerr=[methods[m]["gap"]["se"] or 0.0 for m in names],
        color=palette,
        capsize=3,
    )
    gap_axis.axhline(
        registered["multi_task_gap"], color="k", ls="--", lw=0.8, label="S12: EW optimum at width m"
    )
    gap_axis.axhline(0.0, color="grey", ls=":", lw=0.8, label="S12: single task / width K")
    gap_axis.set_ylabel("summed OOD gap R_T - R_S")
    gap_axis.set_title("gap per method (mean +- SE over seeds)")
    gap_axis.legend()
    weight_axis.bar(positions, [methods[m]["off_block_weight"] for m in names], color=palette)
    weight_axis.axhline(
        registered["multi_task_off_block_weight"],
        color="k",
        ls="--",
        lw=0.8,
        label="S12: EW optimum at width m",
    )
    weight_axis.set_ylabel("off-block weight (mean Jacobian in z)")
    weight_axis.set_title("reading other tasks' causal factors")
    weight_axis.legend()
    for axis in axes[0]:
        axis.set_xticks(positions, names, rotation=30, ha="right")
    return save_figure(figure, directory, "study10_mtcrl")
