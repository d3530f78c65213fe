"""Study 8's figure, drawn from the summary alone (no wall time)."""

from __future__ import annotations

from pathlib import Path

from experiments.synthetic.study8_cost.steps import METHODS


def plot(result: dict, directory: Path) -> list[Path]:
    from experiments.synthetic.plotting import colours, new_figure, save_figure

    summary = result["summary"]
    counts = summary["task_counts"]
    figure, axes = new_figure(2, 1, width=4.0)
    flops_axis, passes_axis = axes[0]
    styles = ("o-", "s-", "^:")
    for colour, style, method in zip(colours(len(METHODS)), styles, METHODS, strict=True):
        entry = summary["methods"][method]
        flops_axis.plot(
            counts, [f / 1e6 for f in entry["flops"]], style, color=colour, label=method
        )
        passes_axis.plot(counts, entry["backward_passes"], style, color=colour, label=method)
    flops_axis.plot(
        counts,
        [f / 1e6 for f in summary["added"]["flops"]],
        "D--",
        color="k",
        label="added by CORE-MTL's terms",
    )
    flops_axis.set_yscale("log")
    flops_axis.set_xlabel("number of tasks K")
    flops_axis.set_ylabel("M FLOPs per training step")
    flops_axis.set_title("FLOPs of a step against K")
    flops_axis.legend()
    passes_axis.set_xlabel("number of tasks K")
    passes_axis.set_ylabel("backward passes through the shared encoder")
    passes_axis.set_title("Backward passes per step")
    passes_axis.legend()
    return save_figure(figure, directory, "study8_cost")
