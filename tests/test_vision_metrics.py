"""Vision metrics against an independent numpy computation on hand-made predictions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from experiments.vision.metrics import (
    ANGLE_BIN_DEGREES,
    DenseMetrics,
    delta_m,
    scale_invariant_mse,
)
from scm.validation import InvalidParameterError

NUM_CLASSES = 4
FLOAT32_MEAN_TOLERANCE = NUM_CLASSES * float(np.finfo(np.float32).eps)
"""torchmetrics reduces the confusion matrix in float32: each IoU carries one rounding and their
mean over at most NUM_CLASSES terms adds one per term."""


def _batch(seed: int, size: int = 3, height: int = 8, width: int = 10):
    rng = np.random.default_rng(seed)
    label = rng.integers(-1, NUM_CLASSES, size=(size, height, width))
    label[label == 3] = 2
    logits = rng.normal(size=(size, NUM_CLASSES, height, width))
    depth = rng.uniform(0.5, 5.0, size=(size, 1, height, width))
    depth[rng.random(depth.shape) < 0.2] = 0.0
    depth_pred = depth + rng.normal(0, 0.3, size=depth.shape)
    normal = rng.normal(size=(size, 3, height, width))
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    normal[:, :, 0, :] = 0.0
    normal_pred = normal + rng.normal(0, 0.4, size=normal.shape)
    batch = {
        "segmentation": torch.from_numpy(label),
        "depth": torch.from_numpy(depth),
        "normal": torch.from_numpy(normal),
    }
    predictions = {
        "segmentation": torch.from_numpy(logits),
        "depth": torch.from_numpy(depth_pred),
        "normal": torch.from_numpy(normal_pred),
    }
    return predictions, batch


def _numpy_reference(pairs):
    labels = np.concatenate([b["segmentation"].numpy().ravel() for _, b in pairs])
    guesses = np.concatenate([p["segmentation"].numpy().argmax(1).ravel() for p, _ in pairs])
    keep = labels >= 0
    labels, guesses = labels[keep], guesses[keep]
    ious = []
    for c in range(NUM_CLASSES):
        union = np.sum((labels == c) | (guesses == c))
        if union:
            ious.append(np.sum((labels == c) & (guesses == c)) / union)
    depth = np.concatenate([b["depth"].numpy().ravel() for _, b in pairs])
    depth_pred = np.concatenate([p["depth"].numpy().ravel() for p, _ in pairs])
    valid = depth > 0
    angles = []
    for p, b in pairs:
        true = np.moveaxis(b["normal"].numpy(), 1, -1).reshape(-1, 3)
        pred = np.moveaxis(p["normal"].numpy(), 1, -1).reshape(-1, 3)
        ok = np.abs(true).sum(1) > 0
        pred = pred[ok] / np.linalg.norm(pred[ok], axis=1, keepdims=True)
        cosine = np.clip(np.sum(pred * true[ok], axis=1), -1, 1)
        angles.append(np.degrees(np.arccos(cosine)))
    angles = np.concatenate(angles)
    return {
        "segmentation/miou": np.mean(ious),
        "segmentation/pixel_accuracy": np.mean(labels == guesses),
        "depth/abs_err": np.mean(np.abs(depth_pred[valid] - depth[valid])),
        "depth/rel_err": np.mean(np.abs(depth_pred[valid] - depth[valid]) / depth[valid]),
        "normal/mean": angles.mean(),
        "normal/median": np.median(angles),
        "normal/within_11.25": np.mean(angles < 11.25),
        "normal/within_22.5": np.mean(angles < 22.5),
        "normal/within_30": np.mean(angles < 30),
    }


def test_split_metrics_match_numpy_over_all_batches():
    pairs = [_batch(seed) for seed in range(3)]
    metrics = DenseMetrics(["segmentation", "depth", "normal"], NUM_CLASSES)
    for predictions, batch in pairs:
        metrics.update(predictions, batch)
    got = metrics.compute()
    expected = _numpy_reference(pairs)
    assert set(got) == set(expected)
    for key, value in expected.items():
        tolerance = {
            "normal/median": ANGLE_BIN_DEGREES / 2,
            "segmentation/miou": FLOAT32_MEAN_TOLERANCE,
        }
        tolerance = tolerance.get(key, 1e-9 * max(1.0, abs(value)))
        assert got[key] == pytest.approx(value, abs=tolerance), key


def test_miou_of_a_perfect_prediction_is_one_and_excludes_absent_classes():
    labels = torch.tensor([[[0, 0, 1], [1, -1, 1]]])
    logits = torch.nn.functional.one_hot(labels.clamp_min(0), NUM_CLASSES).permute(0, 3, 1, 2)
    metrics = DenseMetrics(["segmentation"], NUM_CLASSES)
    metrics.update({"segmentation": logits.float()}, {"segmentation": labels})
    result = metrics.compute()
    assert result["segmentation/miou"] == 1.0 and result["segmentation/pixel_accuracy"] == 1.0


def test_reset_forgets_previous_batches():
    predictions, batch = _batch(0)
    metrics = DenseMetrics(["depth"], NUM_CLASSES)
    metrics.update(predictions, batch)
    first = metrics.compute()
    metrics.update(*_batch(1))
    metrics.reset()
    metrics.update(predictions, batch)
    assert metrics.compute() == first


def test_scale_invariant_error_ignores_a_global_scale_and_sees_structure():
    generator = torch.Generator().manual_seed(0)
    truth = torch.rand(2, 3, 5, 5, generator=generator)
    zero = torch.zeros(2, dtype=torch.float64)
    assert torch.allclose(scale_invariant_mse(3.0 * truth, truth), zero, atol=1e-12)
    assert bool((scale_invariant_mse(torch.rand(2, 3, 5, 5, generator=generator), truth) > 0).all())


def test_delta_m_signs_and_errors():
    reference = {"segmentation/miou": 0.5, "depth/abs_err": 0.4}
    better = {"segmentation/miou": 0.55, "depth/abs_err": 0.36}
    assert delta_m(better, reference) == pytest.approx((-10.0 - 10.0) / 2)
    assert delta_m(better, reference, sign=1) == pytest.approx(10.0)
    assert delta_m(reference, reference) == 0.0
    with pytest.raises(InvalidParameterError, match="sign: expected -1 or"):
        delta_m(better, reference, sign=0)
    with pytest.raises(InvalidParameterError, match="reference: no metric in common"):
        delta_m(better, {"normal/mean": 20.0})
    with pytest.raises(
        InvalidParameterError, match=r"reference\['depth/abs_err'\]: must be non-zero"
    ):
        delta_m(better, {"depth/abs_err": 0.0})
    with_zero = {**reference, "normal/mean": 0.0}
    value = delta_m({**better, "normal/mean": 20.0}, with_zero, skip_zero_reference=True)
    assert value == pytest.approx(-10.0)


def test_libmtl_miou_averages_all_classes_and_is_nan_for_an_absent_one():
    truth = torch.tensor([[[0, 0, 1, 1]]])
    prediction = torch.tensor([[[0, 1, 1, 1]]])
    logits = torch.nn.functional.one_hot(prediction, NUM_CLASSES).permute(0, 3, 1, 2).float()
    values = {}
    for convention in ("present", "libmtl"):
        metrics = DenseMetrics(["segmentation"], NUM_CLASSES, miou_convention=convention)
        metrics.update({"segmentation": logits}, {"segmentation": truth})
        values[convention] = metrics.compute()["segmentation/miou"]
    assert values["present"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert math.isnan(values["libmtl"])
    full = torch.tensor([[[0, 1, 2, 3]]])
    logits = torch.nn.functional.one_hot(full, NUM_CLASSES).permute(0, 3, 1, 2).float()
    metrics = DenseMetrics(["segmentation"], NUM_CLASSES, miou_convention="libmtl")
    metrics.update({"segmentation": logits}, {"segmentation": full})
    assert metrics.compute()["segmentation/miou"] == 1.0


def test_unknown_miou_convention_names_the_key():
    with pytest.raises(InvalidParameterError, match=r"metrics\.miou_convention: expected one of"):
        DenseMetrics(["segmentation"], NUM_CLASSES, miou_convention="voc")
    from experiments.vision.config import VisionConfig, from_dict

    with pytest.raises(InvalidParameterError, match=r"metrics\.miou_convention: expected one of"):
        from_dict(VisionConfig, {"data": {"dataset": "scenes"}, "metrics": {"miou_convention": 1}})
