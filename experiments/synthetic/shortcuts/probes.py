"""What each representation of a trained model holds: linear probes of the nuisance and of the
shortcut task's label, and MT-CRL's routing matrix.

For every representation that :func:`coremtl.probes.representations` returns (``Z`` for every
method; ``Z_s`` and ``Z_r`` for CORE-MTL; each MT-CRL module; what each MTAN head reads), a
linear ridge classifier (scikit-learn's ``RidgeClassifier``: least squares on one-hot targets,
penalty :data:`PROBE_ALPHA`) on standardised pooled features is fitted on one shortcut-free
split (``probe_fit``, drawn from the target law, where the nuisance is independent of the labels)
and its accuracy read on another (``probe_eval``): the *nuisance probe* predicts the nuisance value
(chance ``1 / num_nuisance_values``), the *label probe* the shortcut task's label (classification
benchmarks; chance ``1 / classes``). A representation "holds" the nuisance when its held-out
nuisance accuracy is well above chance. Fitting on shortcut-free data matters: in the source the
nuisance and the label are confounded, so a probe there could not tell which of the two it reads.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from torch import Tensor, nn

from coremtl.probes import representations
from coremtl.tasks import Task

PROBE_ALPHA = 1.0
"""L2 penalty of the probes (scikit-learn's ``alpha``) on standardised features."""


def probe_accuracy(
    fit: np.ndarray, fit_labels: np.ndarray, evaluate: np.ndarray, eval_labels: np.ndarray
) -> float:
    """Held-out accuracy of a ridge classifier on standardised features."""
    from sklearn.linear_model import RidgeClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if np.unique(fit_labels).size < 2:
        return float(np.mean(eval_labels == fit_labels[0]))
    probe = make_pipeline(StandardScaler(), RidgeClassifier(alpha=PROBE_ALPHA))
    probe.fit(fit, fit_labels)
    return float(probe.score(evaluate, eval_labels))


def _vectors(model: nn.Module, x: Tensor, device: str) -> dict[str, np.ndarray]:
    found = representations(model, x.to(device))
    return {
        name: value.detach().double().cpu().numpy()
        for name, value in found.items()
        if name != "routing"
    }


def stream_probes(
    model: nn.Module,
    fit: Mapping[str, Tensor],
    evaluate: Mapping[str, Tensor],
    shortcut_task: Task,
    device: str = "cpu",
) -> dict[str, dict[str, float]]:
    """``{representation: {"nuisance": accuracy, "label": accuracy}}`` (module docstring); the
    label probe only for a classification shortcut task."""
    fit_vectors = _vectors(model, fit["x"], device)
    eval_vectors = _vectors(model, evaluate["x"], device)
    targets = {"nuisance": (fit["nuisance"].numpy(), evaluate["nuisance"].numpy())}
    if shortcut_task.kind == "classification":
        key = shortcut_task.key
        targets["label"] = (fit[key].numpy(), evaluate[key].numpy())
    return {
        name: {
            target: probe_accuracy(fit_vectors[name], fit_y, eval_vectors[name], eval_y)
            for target, (fit_y, eval_y) in targets.items()
        }
        for name in fit_vectors
    }


def routing(model: nn.Module, x: Tensor, device: str = "cpu") -> list[list[float]] | None:
    """MT-CRL's ``(T, M)`` task-to-module edge probabilities, or ``None`` for other methods."""
    found = representations(model, x[:2].to(device))
    if "routing" not in found:
        return None
    return found["routing"].detach().double().cpu().tolist()
