"""One label convention per task kind (coremtl.task_labels), read by the losses and the metrics
alike: the ignore label -1 is left out of both, float classes are used only when whole, a binary
task takes 0 and 1, and a batch with no valid label gives a zero loss and no gradient."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import coremtl
from coremtl.forward import Forward
from coremtl.task_labels import IGNORE_LABEL, check_labels
from coremtl.tasks import Task, evaluate, task_loss
from scm.validation import InvalidParameterError

CLASSES = Task("c", "classification", 3)
BINARY = Task("b", "classification", 1)
MASK = Task("mask", "dense", 3)


class FixedPredictions(nn.Module):
    """A model whose predictions are given tensors (sliced to the batch)."""

    def __init__(self, **predictions: torch.Tensor) -> None:
        super().__init__()
        self.predictions = predictions

    def forward(self, x: torch.Tensor) -> Forward:
        return Forward({k: v[: len(x)] for k, v in self.predictions.items()}, shared=x)


def test_whole_float_classes_are_used_and_fractional_ones_refused_naming_the_task():
    assert check_labels(CLASSES, torch.tensor([0.0, 2.0, -1.0]), "data['c']").tolist() == [0, 2, -1]
    with pytest.raises(InvalidParameterError, match=r"^data\['c'\]: task 'c' .*value 1\.5"):
        check_labels(CLASSES, torch.tensor([0.0, 1.5]), "data['c']")


def test_a_binary_task_takes_zero_and_one_and_the_ignore_label_only():
    assert check_labels(BINARY, torch.tensor([0.0, 1.0, -1.0]), "y").tolist() == [0, 1, -1]
    with pytest.raises(InvalidParameterError, match=r"binary labels 0 or 1.*from 2 to 2"):
        check_labels(BINARY, torch.tensor([0, 1, 2]), "y")


def test_the_ignore_label_is_the_same_for_the_loss_and_the_accuracy():
    """Samples labelled -1 are out of the loss (the mean over the others) and out of the
    accuracy; -100, torch's default ignore index, is refused rather than half ignored."""
    logits = torch.tensor([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0], [3.0, 0.0, 0.0]])
    labels = torch.tensor([0, 1, IGNORE_LABEL, 2])
    loss = task_loss(CLASSES)(logits, {"c": labels})
    kept = labels != IGNORE_LABEL
    assert torch.allclose(loss, F.cross_entropy(logits[kept], labels[kept]))
    model = FixedPredictions(c=logits)
    scores = evaluate(model, {"x": torch.zeros(4, 1), "c": labels}, [CLASSES])
    assert scores["c/accuracy"] == pytest.approx(2 / 3)
    with pytest.raises(InvalidParameterError, match="from -100 to -100"):
        evaluate(model, {"x": torch.zeros(4, 1), "c": torch.tensor([0, 1, -100, 2])}, [CLASSES])


def test_a_binary_task_ignores_minus_one_in_the_loss_and_the_accuracy():
    logits = torch.tensor([[2.0], [-2.0], [2.0]])
    labels = torch.tensor([1, 1, IGNORE_LABEL])
    loss = task_loss(BINARY)(logits, {"b": labels})
    expected = F.binary_cross_entropy_with_logits(logits[:2, 0], labels[:2].float())
    assert torch.allclose(loss, expected)
    scores = evaluate(FixedPredictions(b=logits), {"x": torch.zeros(3, 1), "b": labels}, [BINARY])
    assert scores["b/accuracy"] == pytest.approx(0.5)


def test_a_dense_batch_whose_pixels_are_all_ignored_gives_zero_loss_and_no_gradient():
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    labels = torch.full((2, 4, 4), IGNORE_LABEL)
    loss = task_loss(MASK)(logits, {"mask": labels})
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_an_accuracy_over_labels_all_ignored_is_nan_not_zero():
    model = FixedPredictions(c=torch.randn(4, 3))
    scores = evaluate(model, {"x": torch.zeros(4, 1), "c": torch.full((4,), -1)}, [CLASSES])
    assert math.isnan(scores["c/accuracy"])


@pytest.mark.parametrize("method", ["ew", "cagrad", "nashmtl", "imtl", "mgda"])
def test_training_through_batches_without_a_valid_pixel_stays_finite(method):
    """A dense task whose labels are all ignored gives a constant zero loss, so a zero Jacobian
    row: every balancer keeps training the other task with finite losses."""
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(8, 3, 8, 8, generator=generator)
    data = {
        "x": images,
        "mask": torch.full((8, 8, 8), IGNORE_LABEL),
        "c": torch.randint(0, 3, (8,), generator=generator),
    }
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
    result = coremtl.train(
        method, backbone, [MASK, CLASSES], data, val_data=data, epochs=2, batch_size=4
    )
    losses = [record["train"]["loss/c"] for record in result.history]
    assert all(math.isfinite(value) for value in losses)
    assert all(record["train"]["loss/mask"] == 0.0 for record in result.history)
    assert math.isnan(result.val["mask/accuracy"]) and 0 <= result.val["c/accuracy"] <= 1
