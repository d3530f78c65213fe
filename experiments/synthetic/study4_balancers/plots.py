"""Study 4's figures, from the result dict alone: psi trajectories under joint training (part
C), the profile drift against S4's bound (part B) and the heads at fixed psi (part A)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot(result: dict, directory: Path) -> list[Path]:
    from experiments.synthetic.plotting import colours, new_figure, save_figure

    config, measurements = result["config"], result["measurements"]
    variances = config["variances"]
    names = config["balancers"]
    palette = dict(zip(names, colours(len(names)), strict=True))
    figure, axes = new_figure(len(variances), 1, width=3.2, height=3.0)
    for column, v in enumerate(variances):
        axis = axes[0, column]
        for name in names:
            runs = [
                r["trajectory"]
                for r in measurements["joint"]
                if r["balancer"] == name and r["v"] == v
            ]
            array = np.asarray(runs)
            steps = np.arange(array.shape[1]) * config["record_every"]
            mean, std = (
                array.mean(axis=0),
                array.std(axis=0, ddof=1) if len(runs) > 1 else 0 * array[0],
            )
            axis.plot(steps, mean, color=palette[name], label=name)
            axis.fill_between(steps, mean - std, mean + std, color=palette[name], alpha=0.15)
        axis.set_title(f"S4: psi under joint training, v = {v}")
        axis.set_xlabel("step")
        axis.set_ylabel("psi (rad)")
    axes[0, 0].legend(ncol=2)
    paths = save_figure(figure, directory, "study4_psi_trajectories")

    figure, axes = new_figure(2, 1)
    axis = axes[0, 0]
    profile = measurements["profile"]
    for name in names:
        rows = [r for r in profile if r["balancer"] == name and r["bound"] > 0]
        axis.scatter(
            [r["bound"] for r in rows],
            [r["drift"] for r in rows],
            s=14,
            color=palette[name],
            label=name,
        )
    bounds = [r["bound"] for r in profile if r["bound"] > 0]
    if bounds:
        line = np.array([min(bounds), max(bounds)])
        axis.plot(line, line, "k--", label="drift = bound")
        axis.set_xscale("log")
        drifts = [r["drift"] for r in profile if r["drift"] > 0]
        axis.set_yscale("symlog", linthresh=min(drifts) if drifts else 1e-6)
        axis.set_ylim(bottom=0)
    axis.set_title("S4: profile drift |psi_T - psi_0| vs eta T max|dR*/dpsi|")
    axis.set_xlabel("bound (rad)")
    axis.set_ylabel("measured drift (rad)")
    axis.legend(ncol=2)
    axis = axes[0, 1]
    for name in names:
        for r in (r for r in measurements["heads"] if r["balancer"] == name):
            axis.scatter(r["least_squares_weights"], r["weights"], s=14, color=palette[name])
        axis.scatter([], [], color=palette[name], label=name)
    axis.axline((0, 0), slope=1, color="k", ls="--", lw=0.8)
    axis.set_title(f"S3: heads at fixed psi = {config['psi_fixed']} per balancer")
    axis.set_xlabel("least-squares head weight w_t")
    axis.set_ylabel("trained head weight w_t")
    axis.legend(ncol=2)
    return paths + save_figure(figure, directory, "study4_profile_and_heads")
