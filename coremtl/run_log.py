"""What a run writes and remembers: its log files, its epoch means and its best epoch.

- :class:`RunLog`: ``config.json``, ``metrics.jsonl`` (one row per logged step and one per
  validation), ``epochs.jsonl`` (one record per epoch) and ``metrics.csv`` (the step rows as a
  table) in the output folder, or nothing when there is none (or on a non-main process).
- :class:`EpochMeans`: the mean of each logged value over the steps of the epoch that logged it.
  A term drawn with probability ``p`` (the CFA term) or a probe called every ``n`` steps is
  averaged over its own steps, not over all steps, and the record says how many steps those were.
- :class:`ModelSelection`: the best validation entry so far under ``min`` or ``max`` of a metric.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scm.validation import InvalidParameterError

METRICS = "metrics.jsonl"
EPOCHS = "epochs.jsonl"


class RunLog:
    """The JSON-lines logs of a run in ``folder`` (``None``: a run that writes nothing)."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    def start(self) -> None:
        """Empty the step and epoch logs of a fresh run."""
        if self.folder is None:
            return
        for name in (METRICS, EPOCHS):
            (self.folder / name).write_text("")

    def truncate_after(self, step: int, epoch: int) -> None:
        """Keep the rows a run resumed after ``step`` steps and ``epoch`` epochs has written."""
        if self.folder is None:
            return
        self._keep_below(METRICS, "step", step + 1)
        self._keep_below(EPOCHS, "epoch", epoch)

    def write_config(self, record: Mapping[str, Any]) -> None:
        if self.folder is not None:
            (self.folder / "config.json").write_text(json.dumps(record, indent=2, default=str))

    def append(self, name: str, row: Mapping[str, Any]) -> None:
        if self.folder is None:
            return
        with (self.folder / name).open("a") as file:
            file.write(json.dumps(row) + "\n")

    def _keep_below(self, name: str, key: str, bound: int) -> None:
        path = self.folder / name
        if not path.exists():
            return
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        kept = [row for row in rows if row[key] < bound]
        path.write_text("".join(json.dumps(row) + "\n" for row in kept))

    def write_csv(self) -> None:
        """``metrics.csv``: the rows of ``metrics.jsonl``, one column per key seen."""
        if self.folder is None or not (self.folder / METRICS).exists():
            return
        text = (self.folder / METRICS).read_text()
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        columns: list[str] = []
        for row in rows:
            columns.extend(key for key in row if key not in columns)
        with (self.folder / "metrics.csv").open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)


class EpochMeans:
    """Running sums and counts of the float values of an epoch's step rows.

    ``mean[k] = sum of row[k] over the steps whose row holds k / the number of those steps``.
    """

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.steps = 0

    def add(self, row: Mapping[str, Any]) -> None:
        for key, value in row.items():
            if isinstance(value, float):
                self.sums[key] = self.sums.get(key, 0.0) + value
                self.counts[key] = self.counts.get(key, 0) + 1
        self.steps += 1

    def means(self) -> dict[str, float]:
        return {key: total / self.counts[key] for key, total in self.sums.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"epoch_sums": self.sums, "epoch_counts": self.counts, "epoch_count": self.steps}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.sums = dict(state["epoch_sums"])
        self.steps = state["epoch_count"]
        self.counts = dict(state.get("epoch_counts", dict.fromkeys(self.sums, self.steps)))


class ModelSelection:
    """The best validation entry of a run under ``mode`` (``'min'`` or ``'max'``) of ``metric``
    (``None``: no selection)."""

    def __init__(self, metric: str | None, mode: str) -> None:
        self.metric = metric
        self.mode = mode
        self.best: dict[str, Any] | None = None

    def update(
        self, metrics: Mapping[str, float], test: Mapping[str, float], step: int, epoch: int
    ) -> bool:
        """Record this epoch's entry when it is better than the best so far; returns whether."""
        if self.metric is None:
            return False
        if self.metric not in metrics:
            raise InvalidParameterError(
                f"selection_metric: {self.metric!r} is not among the validation metrics "
                f"{sorted(metrics)}"
            )
        value = metrics[self.metric]
        better = (
            self.best is None
            or (self.mode == "min" and value < self.best["value"])
            or (self.mode == "max" and value > self.best["value"])
        )
        if better:
            self.best = {
                "metric": self.metric,
                "value": value,
                "step": step,
                "epoch": epoch,
                "val": dict(metrics),
                "test": dict(test),
            }
        return better
