"""coremtl.evaluate's metrics of dense classification: pixel accuracy and mIoU."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import coremtl
from coremtl.forward import Forward


class Constant(nn.Module):
    """Predicts class ``label`` at every pixel."""

    def __init__(self, label: int, classes: int = 3) -> None:
        super().__init__()
        self.label, self.classes = label, classes

    def forward(self, x: torch.Tensor) -> Forward:
        logits = torch.zeros(x.shape[0], self.classes, *x.shape[2:])
        logits[:, self.label] = 1.0
        return Forward(predictions={"seg": logits}, shared=x)


def _data(ignored: bool = False) -> dict[str, torch.Tensor]:
    labels = torch.zeros(2, 4, 4, dtype=torch.long)
    labels[:, :2] = 1
    if ignored:
        labels[:, 3] = -1
    return {"x": torch.rand(2, 3, 4, 4), "seg": labels}


def test_miou_averages_the_intersection_over_union_of_the_classes_present():
    scores = coremtl.evaluate(Constant(0), _data(), [coremtl.Task("seg", "dense", 3)])
    assert scores["seg/accuracy"] == pytest.approx(0.5)
    assert scores["seg/miou"] == pytest.approx((0.5 + 0.0) / 2)


def test_miou_leaves_out_ignored_pixels_as_the_accuracy_does():
    scores = coremtl.evaluate(Constant(0), _data(ignored=True), [coremtl.Task("seg", "dense", 3)])
    assert scores["seg/accuracy"] == pytest.approx(4 / 12)
    assert scores["seg/miou"] == pytest.approx((8 / 24 + 0.0) / 2)


def test_a_perfect_prediction_has_miou_one_and_regression_tasks_have_none():
    data = {"x": torch.rand(2, 3, 4, 4), "seg": torch.zeros(2, 4, 4, dtype=torch.long)}
    assert coremtl.evaluate(Constant(0), data, [coremtl.Task("seg", "dense", 3)])["seg/miou"] == 1
    real = {"x": data["x"], "seg": torch.rand(2, 3, 4, 4)}
    assert "seg/miou" not in coremtl.evaluate(Constant(0), real, [coremtl.Task("seg", "dense", 3)])
