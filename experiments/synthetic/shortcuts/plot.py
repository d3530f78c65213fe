"""The suite's figures, drawn from the result alone.

- ``study9_shortcuts``: per benchmark, every method's target metric of the shortcut task minus
  EW's (paired mean +- 2 SE), coloured by family, with the calibration row for scale;
- ``study9_probes``: per benchmark, the held-out nuisance probe of each representation of the
  methods that have more than one (CORE-MTL's streams, MT-CRL's modules), against chance;
- ``study9_sweep`` (only where a strength sweep was run): each swept method minus EW against the
  source strength ``p``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from experiments.synthetic.shortcuts.methods import EW, FAMILIES, METHODS

FIGURES = ("study9_shortcuts", "study9_probes", "study9_sweep")
"""The stems of the suite's figure files (the last only where a sweep ran)."""


def plot(result: dict, directory: Path) -> list[Path]:
    from matplotlib.patches import Patch

    from experiments.synthetic.plotting import colours, new_figure, save_figure

    benchmarks = result["summary"]["benchmarks"]
    palette = {**dict(zip(FAMILIES, colours(len(FAMILIES)), strict=True)), "calibration": "0.6"}
    names = list(dict.fromkeys(n for b in benchmarks.values() for n in b["methods"]))
    count = len(benchmarks)
    figure, axes = new_figure(count, 1, width=_width(count), height=0.22 * len(names) + 1.2)
    for axis, (key, bench) in zip(axes[0], benchmarks.items(), strict=True):
        present = [n for n in names if n in bench["methods"]]
        rows = np.arange(len(present))
        means = [bench["methods"][n]["minus_ew"]["mean"] for n in present]
        errors = [2 * min(bench["methods"][n]["minus_ew"]["se"], 1e3) for n in present]
        axis.barh(
            rows, means, xerr=errors, capsize=2,
            color=[palette[METHODS[n].family] for n in present],
        )  # fmt: skip
        axis.axvline(0.0, color="k", lw=0.8)
        axis.set_yticks(rows, present if axis is axes[0, 0] else [""] * len(present))
        axis.invert_yaxis()
        axis.set_xlabel(f"target {bench['metric']} minus EW")
        axis.set_title(key)
    handles = [Patch(color=palette[family], label=family) for family in FAMILIES]
    axes[0, -1].legend(handles=handles, loc="lower right")
    paths = save_figure(figure, directory, FIGURES[0])

    probed = {key: _probes(bench) for key, bench in benchmarks.items()}
    longest = max((len(labels) for labels, _ in probed.values()), default=1)
    figure, axes = new_figure(count, 1, width=_width(count), height=0.13 * longest + 1.4)
    for axis, (key, bench) in zip(axes[0], benchmarks.items(), strict=True):
        labels, values = probed[key]
        rows = np.arange(len(labels))
        axis.barh(rows, values, color="tab:blue")
        chance = bench.get("nuisance_chance")
        if chance:
            axis.axvline(chance, color="grey", ls="--", lw=0.8)
        axis.set_yticks(rows, labels, fontsize=6)
        axis.invert_yaxis()
        axis.set_xlim(0, 1)
        axis.set_xlabel("held-out nuisance probe accuracy")
        axis.set_title(key)
    paths += save_figure(figure, directory, FIGURES[1])
    swept = {key: bench["sweep"] for key, bench in benchmarks.items() if bench.get("sweep")}
    if not swept:
        return paths
    figure, axes = new_figure(len(swept), 1, width=4.0, height=3.2)
    for axis, (key, found) in zip(axes[0], swept.items(), strict=True):
        methods = [name for name in found if name != EW]
        for colour, name in zip(colours(len(methods)), methods, strict=True):
            strengths = sorted((p for p in found[name] if found[name][p]["minus_ew"]), key=float)
            means = [found[name][p]["minus_ew"]["mean"] for p in strengths]
            errors = [2 * found[name][p]["minus_ew"]["se"] for p in strengths]
            axis.errorbar(
                [float(p) for p in strengths], means, yerr=errors, marker="o", capsize=2,
                color=colour, label=name,
            )  # fmt: skip
        axis.axhline(0.0, color="k", lw=0.8)
        axis.set_xlabel("source strength p of the shortcut")
        axis.set_ylabel(f"target {benchmarks[key]['metric']} minus EW")
        axis.set_title(key)
    axes[0, 0].legend(fontsize=7)
    return paths + save_figure(figure, directory, FIGURES[2])


def _width(count: int) -> float:
    """The width of one of ``count`` panels, in inches: 4 per panel and 3 for the labels."""
    return 4.0 + 3.0 / count


def _probes(bench: dict) -> tuple[list[str], list[float]]:
    """The probed representations of EW and of the methods with more than one, and their held-out
    nuisance probe accuracy."""
    labels, values = [], []
    for name, entry in bench["methods"].items():
        for representation, probes in entry["probes"].items():
            if len(entry["probes"]) > 1 or name == EW:
                labels.append(f"{name}: {representation}")
                values.append(probes["nuisance"])
    return labels, values
