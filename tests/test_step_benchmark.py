"""``coremtl bench step``: the runs it times compute what the trainer computes."""

from __future__ import annotations

import argparse
import math

import pytest
import torch

from coremtl import benchmark
from coremtl.representation import LinearHeads


@pytest.fixture
def stacked_and_separate(tmp_path):
    """The CORE-MTL run with stacked heads and one loss call, and with separate heads."""
    device = torch.device("cpu")
    core = next(s for s in benchmark.SETTINGS if s.label == benchmark.CORE_AT_ONE["input"])
    stacked = benchmark._build(core, 5, device, str(tmp_path))
    separate = benchmark._build(
        benchmark.Setting(core.label, "ew", True, True, "input", 1.0, stacked=False),
        5,
        device,
        str(tmp_path),
    )
    return stacked, separate


def test_stacked_runs_use_linear_heads_and_separate_runs_one_head_per_task(stacked_and_separate):
    (stacked, _), (separate, _) = stacked_and_separate
    assert isinstance(stacked.model.heads, LinearHeads)
    assert not isinstance(separate.model.heads, LinearHeads)
    assert stacked.model.task_names == separate.model.task_names


def test_one_loss_call_gives_the_per_task_losses(stacked_and_separate):
    """The vectorised binary cross-entropy equals the K per-task loss functions."""
    (trainer, batch), _ = stacked_and_separate
    predictions = trainer.model(batch["x"]).predictions
    vectorised = trainer.task_losses_fn(predictions, batch)
    per_task = {name: loss(predictions[name], batch) for name, loss in trainer.task_losses.items()}
    assert list(vectorised) == list(per_task)
    for name, value in per_task.items():
        torch.testing.assert_close(vectorised[name], value)


def test_expected_cost_weights_the_cfa_step_by_its_probability():
    values = {
        benchmark.CORE_AT_ONE["feature"]: {10: 4.0, 40: 8.0},
        benchmark.CORE_AT_ONE["input"]: {10: 6.0, 40: 10.0},
        benchmark.CFA_OFF: {10: 2.0, 40: 4.0},
    }
    benchmark._with_expected(values, 0.25)
    assert values[benchmark.expected_label("feature", 0.25)] == {10: 2.5, 40: 5.0}
    assert values[benchmark.expected_label("input", 0.25)] == {10: 3.0, 40: 5.5}


@pytest.mark.slow
def test_quick_run_reports_finite_ratios_for_every_run(capsys):
    args = argparse.Namespace(device="cpu", repeats=1, quick=True)
    result = benchmark.main(args)
    assert set(result["step_seconds"]) >= {s.label for s in benchmark.SETTINGS}
    for group in ("core_over_ew", "core_over_ew_flops", "cka_share_of_core_step"):
        for ratios in result[group].values():
            assert all(math.isfinite(v) and v > 0 for v in ratios.values())
    assert all(math.isfinite(v) for v in result["k40_over_k10"].values())
    assert "CORE-MTL / EW" in capsys.readouterr().out
