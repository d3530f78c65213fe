"""Dense multi-task metrics accumulated over a whole split (never averaged per batch).

- Segmentation: one confusion matrix (torchmetrics ``MulticlassJaccardIndex`` with
  ``ignore_index=-1``). ``miou = mean_c TP_c / (TP_c + FP_c + FN_c)``, by ``miou_convention``:
  ``present`` (default) over the classes present in the truth or the prediction (torchmetrics drops
  classes whose union is empty), ``libmtl`` over all ``C`` classes as LibMTL's ``SegMetric`` does
  (NaN when a class is absent from both); ``pixel_accuracy = sum_c TP_c / #labelled pixels``.
- Depth over valid pixels (``d > 0``): ``abs_err = sum |d_hat - d| / n``,
  ``rel_err = sum |d_hat - d| / d / n``.
- Normals over valid pixels (truth not all-zero): the angle
  ``arccos(<n_hat / |n_hat|, n / |n|>)`` in degrees; ``mean``, ``median`` and the share within
  11.25, 22.5 and 30 degrees. The median comes from a histogram with 0.001-degree bins (exact to
  half that width), so a split of any size needs O(1) memory.
- Intrinsic decomposition (rendered scenes, truth known): albedo and shading errors as
  scale-invariant mean squared errors, ``min_a mean (a * x_hat - x)^2`` per image (albedo and
  shading are only defined up to a reciprocal scale), averaged over images.
- CelebA attributes (:mod:`.attributes`): a logit ``y_hat > 0`` predicts the attribute present;
  ``<name>/accuracy = #{i : [y_hat_i > 0] = y_i} / n`` over the split, and
  ``attributes/mean_accuracy`` the mean of those accuracies over the attributes (every attribute is
  labelled on every image, so it is also the share of correct image-attribute pairs).
- ``Delta_m %`` against single-task numbers: ``mean_k (-1)^{l_k} (M_k - M_stl,k) / M_stl,k * 100``
  with ``l_k = 1`` when higher is better, so a negative value is an improvement (the convention of
  Nash-MTL, FAMO and FairGrad); ``sign=+1`` reports the opposite sign. Summaries of other metrics
  (:data:`SUMMARY_METRICS`: the mean attribute accuracy) are left out, so no attribute counts twice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

from coremtl.intrinsic_probes import scale_invariant_mse
from scm.validation import InvalidParameterError

from .attributes import CELEBA_ATTRIBUTES, MEAN_ACCURACY, accuracy_key, attribute_tasks

HIGHER_IS_BETTER = {
    "segmentation/miou": True,
    "segmentation/pixel_accuracy": True,
    "depth/abs_err": False,
    "depth/rel_err": False,
    "normal/mean": False,
    "normal/median": False,
    "normal/within_11.25": True,
    "normal/within_22.5": True,
    "normal/within_30": True,
    "albedo/si_mse": False,
    "shading/si_mse": False,
    **{accuracy_key(name): True for name in CELEBA_ATTRIBUTES},
    MEAN_ACCURACY: True,
}
SUMMARY_METRICS = frozenset({MEAN_ACCURACY})
MIOU_CONVENTIONS = {
    "present": "mean IoU over the classes present in the truth or the prediction (torchmetrics)",
    "libmtl": "mean IoU over all classes of the confusion matrix, NaN for an absent class (LibMTL)",
}
ANGLE_BIN_DEGREES = 1e-3
ANGLE_THRESHOLDS = (11.25, 22.5, 30.0)


def normal_angles(prediction: Tensor, target: Tensor) -> Tensor:
    """Angles in degrees (float64) between predicted and true normals at valid pixels, flat."""
    valid = target.abs().sum(dim=1) > 0
    pred = torch.nn.functional.normalize(prediction.double(), dim=1)
    true = torch.nn.functional.normalize(target.double(), dim=1)
    cosine = (pred * true).sum(dim=1).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.arccos(cosine[valid]))


class DenseMetrics:
    """Accumulates the metrics of ``tasks`` over batches; ``compute()`` returns a flat dict."""

    def __init__(
        self,
        tasks: list[str],
        num_classes: int,
        device: str | torch.device = "cpu",
        miou_convention: str = "present",
    ):
        from torchmetrics.classification import MulticlassJaccardIndex

        if miou_convention not in MIOU_CONVENTIONS:
            raise InvalidParameterError(
                f"metrics.miou_convention: expected one of {list(MIOU_CONVENTIONS)}, "
                f"got {miou_convention!r}"
            )
        self.miou_convention = miou_convention
        self.tasks = list(tasks)
        self.attributes = attribute_tasks(self.tasks)
        self.device = torch.device(device)
        self.jaccard = MulticlassJaccardIndex(
            num_classes=num_classes, ignore_index=-1, average="macro", sync_on_compute=False
        ).to(self.device)
        self.bins = round(180.0 / ANGLE_BIN_DEGREES)
        self.reset()

    def reset(self) -> None:
        self.jaccard.reset()
        zero = torch.zeros((), dtype=torch.float64, device=self.device)
        self.depth_abs, self.depth_rel, self.depth_count = zero.clone(), zero.clone(), zero.clone()
        self.angle_sum, self.angle_count = zero.clone(), zero.clone()
        self.angle_within = torch.zeros(
            len(ANGLE_THRESHOLDS), dtype=torch.float64, device=self.device
        )
        self.angle_hist = torch.zeros(self.bins, dtype=torch.float64, device=self.device)
        self.decomposition: dict[str, list[Tensor]] = {"albedo": [], "shading": []}
        self.attribute_correct = torch.zeros(
            len(self.attributes), dtype=torch.float64, device=self.device
        )
        self.attribute_count = zero.clone()

    @torch.no_grad()
    def update(self, predictions: Mapping[str, Tensor], batch: Mapping[str, Tensor]) -> None:
        if "segmentation" in self.tasks:
            logits = predictions["segmentation"]
            self.jaccard.update(logits.argmax(dim=1), batch["segmentation"].to(logits.device))
        if "depth" in self.tasks:
            pred = predictions["depth"].double()
            true = batch["depth"].to(pred.device).double()
            valid = true > 0
            error = (pred - true).abs()[valid]
            self.depth_abs += error.sum()
            self.depth_rel += (error / true[valid]).sum()
            self.depth_count += valid.sum()
        if "normal" in self.tasks:
            angles = normal_angles(predictions["normal"], batch["normal"].to(self.device)).double()
            self.angle_sum += angles.sum()
            self.angle_count += angles.numel()
            for i, threshold in enumerate(ANGLE_THRESHOLDS):
                self.angle_within[i] += (angles < threshold).sum()
            self.angle_hist += torch.histc(angles, bins=self.bins, min=0.0, max=180.0)
        if self.attributes:
            logits = torch.stack([predictions[name] for name in self.attributes], dim=1)
            truth = torch.stack([batch[name] for name in self.attributes], dim=1)
            if truth.shape != logits.shape:
                raise InvalidParameterError(
                    f"batch: expected one label per sample for each attribute of "
                    f"{self.attributes}, got labels {tuple(truth.shape)} for logits "
                    f"{tuple(logits.shape)}"
                )
            correct = (logits > 0) == (truth.to(logits.device) > 0.5)
            self.attribute_correct += correct.sum(dim=0).to(self.device, torch.float64)
            self.attribute_count += truth.shape[0]
        for name in ("albedo", "shading"):
            if name in predictions and name in batch:
                self.decomposition[name].append(
                    scale_invariant_mse(predictions[name], batch[name].to(predictions[name].device))
                )

    def _median_angle(self) -> float:
        """Mean of the bin centres holding the order statistics ``ceil(n/2)`` and
        ``floor(n/2) + 1`` (1-based), i.e. the median to within half a bin."""
        count = int(self.angle_count)
        cumulative = torch.cumsum(self.angle_hist, 0)
        ranks = torch.tensor(
            [(count + 1) // 2, count // 2 + 1], dtype=cumulative.dtype, device=cumulative.device
        )
        bins = torch.searchsorted(cumulative, ranks).double()
        return float(((bins + 0.5) * ANGLE_BIN_DEGREES).mean())

    def compute(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if "segmentation" in self.tasks:
            confmat = self.jaccard.confmat.double()
            if self.miou_convention == "libmtl":
                intersection = confmat.diagonal()
                union = confmat.sum(0) + confmat.sum(1) - intersection
                out["segmentation/miou"] = float((intersection / union).mean())
            else:
                out["segmentation/miou"] = float(self.jaccard.compute())
            total = float(confmat.sum())
            out["segmentation/pixel_accuracy"] = (
                float(confmat.diagonal().sum()) / total if total > 0 else math.nan
            )
        if "depth" in self.tasks:
            count = float(self.depth_count)
            out["depth/abs_err"] = float(self.depth_abs) / count if count else math.nan
            out["depth/rel_err"] = float(self.depth_rel) / count if count else math.nan
        if "normal" in self.tasks:
            count = float(self.angle_count)
            out["normal/mean"] = float(self.angle_sum) / count if count else math.nan
            out["normal/median"] = self._median_angle() if count else math.nan
            for i, threshold in enumerate(ANGLE_THRESHOLDS):
                name = f"normal/within_{threshold:g}"
                out[name] = float(self.angle_within[i]) / count if count else math.nan
        if self.attributes:
            count = float(self.attribute_count)
            accuracies = (
                self.attribute_correct / count
                if count
                else torch.full_like(self.attribute_correct, math.nan)
            )
            for name, accuracy in zip(self.attributes, accuracies.tolist(), strict=True):
                out[accuracy_key(name)] = accuracy
            out[MEAN_ACCURACY] = float(accuracies.mean())
        for name, values in self.decomposition.items():
            if values:
                out[f"{name}/si_mse"] = float(torch.cat(values).mean())
        return out


def delta_m(
    metrics: Mapping[str, float],
    reference: Mapping[str, float],
    sign: int = -1,
    skip_zero_reference: bool = False,
) -> float:
    """``Delta_m %`` over the metrics present in both mappings.

    ``sign=-1`` (default): ``mean_k (-1)^{l_k} (M_k - R_k) / R_k * 100`` with ``l_k = 1`` when higher
    is better (negative = improvement over the single-task reference ``R``); ``sign=+1`` negates it.
    A zero reference value is an error, or skipped with ``skip_zero_reference``.
    """
    if sign not in (-1, 1):
        raise InvalidParameterError(f"sign: expected -1 or +1, got {sign!r}")
    keys = [
        k for k in reference if k in metrics and k in HIGHER_IS_BETTER and k not in SUMMARY_METRICS
    ]
    if skip_zero_reference:
        keys = [k for k in keys if reference[k] != 0]
    if not keys:
        raise InvalidParameterError(
            f"reference: no metric in common with {sorted(metrics)}; expected keys among "
            f"{sorted(HIGHER_IS_BETTER)}"
        )
    total = 0.0
    for key in keys:
        if reference[key] == 0:
            raise InvalidParameterError(f"reference[{key!r}]: must be non-zero")
        relative = (metrics[key] - reference[key]) / reference[key] * 100.0
        total += -relative if HIGHER_IS_BETTER[key] else relative
    value = total / len(keys)
    return value if sign == -1 else -value
