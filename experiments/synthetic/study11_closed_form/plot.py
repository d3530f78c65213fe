"""Study 11's figure, drawn from the result dict alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot(result: dict, directory: Path) -> list[Path]:
    from experiments.synthetic.plotting import colours, new_figure, save_figure

    config, found = result["config"], result["measurements"]["curves"]
    summary = result["summary"]
    cells = [
        {**cell, **judged}
        for cell, judged in zip(result["measurements"]["cells"], summary["judged"], strict=True)
    ]
    variances, sizes = config["variances"], config["shift_sizes"]
    figure, axes = new_figure(len(variances) + 1, 1, width=4.0)
    palette = dict(zip(sizes, colours(len(sizes)), strict=True))
    grid = np.asarray(found["sin2"])
    for axis, v in zip(axes[0], variances, strict=False):
        for number, size in enumerate(sizes):
            colour = palette[size]
            entry = found[f"{v}|{size}"]
            axis.plot(
                grid, entry["bound"], "--", color=colour, lw=1.2, label=f"||dSigma||_F = {size}"
            )
            for key, values in entry.items():
                if key.startswith("random"):
                    axis.plot(grid, values, "-", color=colour, lw=0.7, alpha=0.5)
            chosen = [c for c in cells if c["variance"] == v and c["shift_size"] == size]
            for kind, marker, ms in (("random", ".", 3), ("orthogonal", "x", 4), ("worst", "o", 4)):
                points = [c for c in chosen if c["direction"].startswith(kind)]
                if points:
                    axis.errorbar(
                        [c["sin2"] for c in points],
                        [c["monte_carlo"] for c in points],
                        yerr=[2 * c["standard_error"] for c in points],
                        fmt=marker,
                        ms=ms,
                        color=colour,
                        alpha=0.8,
                        label=f"MC, {kind} direction" if number == 0 else None,
                    )
        low, high = axis.get_ylim()
        axis.set_ylim(low, high + 0.6 * (high - low))
        axis.set_title(f"gap vs sin^2(psi), Sigma_S = {v} A")
        axis.set_xlabel("sin^2(psi)")
        axis.set_ylabel("R_T - R_S")
        axis.legend(
            loc="upper left",
            fontsize=6,
            title="dashed: S2 bound; thin: S1, random dirs; points: MC +- 2 SE",
            title_fontsize=6,
        )
    axis = axes[0, -1]
    kinds = ("random", "orthogonal", "worst")
    for kind, colour in zip(kinds, colours(len(kinds)), strict=True):
        points = [c for c in cells if c["direction"].startswith(kind) and c["z_s1"] is not None]
        axis.scatter(
            [c["sin2"] for c in points], [c["z_s1"] for c in points], s=8, color=colour, label=kind
        )
    z = summary["z"]
    for level in (z, -z):
        axis.axhline(level, color="k", ls="--", lw=0.8)
    axis.set_title(f"(MC - S1) / SE, {len(cells)} cells; dashed: Bonferroni z = {z:.2f}")
    axis.set_xlabel("sin^2(psi)")
    axis.set_ylim(-z - 1.5, z + 1.5)
    axis.set_ylabel("standard errors")
    axis.legend(loc="lower center", ncol=3)
    return save_figure(figure, directory, "study11_closed_form")
