"""Study 5's figure, from the result dict alone: the population CKA against psi and the angle
each objective reaches."""

from __future__ import annotations

from pathlib import Path

from experiments.synthetic.study5_cka.training import OBJECTIVES


def plot(result: dict, directory: Path) -> list[Path]:
    from experiments.synthetic.plotting import colours, new_figure, save_figure

    config, measurements = result["config"], result["measurements"]
    figure, axes = new_figure(2, 1)
    axis = axes[0, 0]
    for style, (v, curve) in zip(
        ("-", "--", ":", "-.", "-", "--", ":"), measurements["population_cka"].items(), strict=False
    ):
        axis.plot(
            measurements["grid"],
            curve,
            style,
            label=f"v = {v}" + (" (= Sigma_s)" if float(v) == 1 else ""),
        )
    axis.set_title("S6: population linear CKA of the streams")
    axis.set_xlabel("psi (rad)")
    axis.set_ylabel("CKA(Zhat_s, Zhat_r) (dimensionless)")
    axis.legend()
    axis = axes[0, 1]
    palette = dict(zip(OBJECTIVES, colours(len(OBJECTIVES)), strict=True))
    positions = []
    labels = []
    for row_index, v in enumerate(config["variances"]):
        for start_index, psi_start in enumerate(config["starts"]):
            position = row_index * (len(config["starts"]) + 1) + start_index
            positions.append(position)
            labels.append(f"v={v}\npsi0={psi_start}")
            for offset, name in enumerate(OBJECTIVES):
                finals = [
                    r["final_psi"]
                    for r in measurements["rows"]
                    if r["objective"] == name and r["v"] == v and r["psi_start"] == psi_start
                ]
                x = position + (offset - len(OBJECTIVES) / 2) * 0.12
                axis.scatter(
                    [x] * len(finals),
                    finals,
                    s=12,
                    color=palette[name],
                    label=name if position == 0 else None,
                )
            axis.hlines(psi_start, position - 0.4, position + 0.4, colors="grey", linestyles=":")
    axis.set_xticks(positions, labels, fontsize=6)
    axis.set_ylabel("final psi (rad); dotted: psi0")
    axis.set_title("S6: angle reached by each objective (every seed)")
    axis.legend(fontsize=6)
    return save_figure(figure, directory, "study5_cka_identifiability")
