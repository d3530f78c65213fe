"""The label-conditional independence penalty (docs/THEORY.md S13): the estimator
(:func:`coremtl.cka.conditional_linear_cka`), the label matrix (:mod:`coremtl.label_matrix`), the
objective's ``independence`` option, ``coremtl.train`` end to end and the vision config.

Estimator tests average over independent batches and use ``Z_SCORE`` standard errors of that
mean as the tolerance.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import coremtl
from coremtl.cka import conditional_linear_cka, label_complement, linear_cka
from coremtl.forward import Forward
from coremtl.label_matrix import label_columns, label_matrix
from coremtl.objective import CoreMTLObjective
from coremtl.tasks import Task
from proofs.montecarlo import Z_SCORE, mean_and_standard_error
from scm.validation import InvalidParameterError

sys.path.insert(0, str(Path(__file__).parent))
from test_preset import TASKS, image_data, small_cnn

CONFIGS = Path(__file__).resolve().parents[1] / "experiments" / "vision" / "configs"
BATCHES = 200


def _batches(shared_nuisance: float, label: str, seed: int = 0, classes: int = 4, p: int = 8):
    """Features driven by the labels (one-hot classes or real values) plus independent noise,
    and optionally a nuisance ``u`` shared beyond the labels: ``x = Y M_x + e + c u a^T``,
    ``z = Y M_z + e' + c u b^T``."""
    generator = torch.Generator().manual_seed(seed)
    n = 64
    loadings = [torch.randn(classes, p, generator=generator, dtype=torch.float64) * 2 for _ in "xz"]
    shared = [torch.randn(1, p, generator=generator, dtype=torch.float64) for _ in "xz"]
    for _ in range(BATCHES):
        if label == "classification":
            y = torch.randint(0, classes, (n,), generator=generator)
            design = torch.nn.functional.one_hot(y, classes).double()
            labels = design
        else:
            design = torch.randn(n, classes, generator=generator, dtype=torch.float64)
            labels = design
        u = torch.randn(n, 1, generator=generator, dtype=torch.float64)
        x, z = (
            design @ m
            + torch.randn(n, p, generator=generator, dtype=torch.float64)
            + shared_nuisance * u @ s
            for m, s in zip(loadings, shared, strict=True)
        )
        yield x, z, labels


def _mean(values) -> tuple[float, float]:
    return mean_and_standard_error(np.array([float(v) for v in values]))


@pytest.mark.parametrize("label", ["classification", "regression"])
def test_conditional_cka_is_centred_at_zero_when_the_labels_carry_all_the_dependence(label):
    conditional, marginal = [], []
    for x, z, labels in _batches(0.0, label):
        conditional.append(conditional_linear_cka(x, z, labels))
        marginal.append(linear_cka(x, z))
    mean, error = _mean(conditional)
    assert abs(mean) <= Z_SCORE * error
    mean, error = _mean(marginal)
    assert mean - Z_SCORE * error > 0.1


def test_conditional_cka_is_positive_with_a_nuisance_shared_beyond_the_label():
    mean, error = _mean(conditional_linear_cka(*batch) for batch in _batches(1.5, "classification"))
    assert mean - Z_SCORE * error > 0.0


def test_residuals_in_the_original_coordinates_would_be_biased():
    """Why the estimator rotates: least-squares residuals ``(I - P) x`` keep n rows whose kernel
    has an off-diagonal mean, and their debiased CKA is above zero under conditional independence
    (the setting of the estimator's docstring: batch 64, 8 classes, 16 + 16 features)."""
    values = []
    for x, z, labels in _batches(0.0, "classification", classes=8, p=16):
        design = torch.cat([torch.ones(len(labels), 1, dtype=torch.float64), labels], 1)
        projection = design @ torch.linalg.pinv(design)
        values.append(linear_cka(x - projection @ x, z - projection @ z))
    mean, error = _mean(values)
    assert mean - Z_SCORE * error > 0.0


def test_constant_labels_give_the_plain_debiased_cka_exactly():
    generator = torch.Generator().manual_seed(1)
    x, z = torch.randn(32, 5, generator=generator), torch.randn(32, 3, generator=generator)
    for labels in (torch.ones(32, 2), torch.zeros(32, 0), torch.full((32,), 3.0)):
        assert torch.equal(conditional_linear_cka(x, z, labels), linear_cka(x, z))


def test_the_complement_is_orthonormal_orthogonal_to_the_labels_and_keeps_a_common_mean():
    generator = torch.Generator().manual_seed(2)
    classes = torch.randint(0, 5, (40,), generator=generator)
    one_hot = torch.nn.functional.one_hot(classes, 5).double()
    labels = torch.cat([one_hot, one_hot[:, :1] * 2.0, torch.randn(40, 1, generator=generator)], 1)
    basis = label_complement(labels)
    rank = int(torch.linalg.matrix_rank(labels - labels.mean(0)))
    assert basis.shape == (40, 40 - rank)
    torch.testing.assert_close(basis.T @ basis, torch.eye(40 - rank, dtype=torch.float64))
    projected = basis.T @ labels
    torch.testing.assert_close(projected, projected[:1].expand_as(projected))
    ones = basis.T @ torch.ones(40, dtype=torch.float64)
    torch.testing.assert_close(ones, torch.full_like(ones, math.sqrt(40 / (40 - rank))))


def test_gradient_matches_finite_differences():
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(12, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    z = torch.randn(12, 2, generator=generator, dtype=torch.float64, requires_grad=True)
    labels = torch.nn.functional.one_hot(torch.arange(12) % 3, 3).double()
    z_dependent = (z + 0.5 * x[:, :2]).detach().requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: conditional_linear_cka(a, b, labels), (x, z))
    assert torch.autograd.gradcheck(
        lambda a, b: conditional_linear_cka(a, b, labels), (x, z_dependent)
    )


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (torch.ones(7, 1), "labels: expected a (B, L) label matrix with B = 8"),
        (torch.full((8, 1), float("nan")), "labels: expected finite labels"),
        (torch.eye(8)[:, :5], "labels: partialling out 5 label direction(s) leaves 3"),
    ],
)
def test_bad_labels_name_the_parameter(labels, message):
    x, z = torch.randn(8, 3), torch.randn(8, 3)
    with pytest.raises(
        InvalidParameterError, match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        conditional_linear_cka(x, z, labels)


# -------------------------------------------------------------------------------- label matrix


def test_label_matrix_codes_each_kind():
    batch = {
        "label": torch.tensor([0, 2]),
        "flag": torch.tensor([1, 0]),
        "value": torch.tensor([[0.5, 1.0], [2.0, -1.0]]),
        "mask": torch.tensor([[[0, 1], [1, -1]], [[-1, -1], [-1, -1]]]),
        "depth": torch.arange(8.0).reshape(2, 1, 2, 2),
    }
    tasks = [*TASKS, Task("depth", "dense", 1)]
    matrix = label_matrix(batch, tasks)
    expected = torch.tensor(
        [
            [1, 0, 0, 1, 0.5, 1.0, 1 / 3, 2 / 3, 1.5],
            [0, 0, 1, 0, 2.0, -1.0, 0, 0, 5.5],
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(matrix, expected)
    assert label_columns(tasks) == matrix.shape[1] == 9


@pytest.mark.parametrize(
    ("batch", "tasks", "message"),
    [
        ({}, [TASKS[0]], "batch: expected the labels of task 'label' under 'label'"),
        ({"label": torch.tensor([0, 3])}, [TASKS[0]], "expected classes in 0..2"),
        ({"label": torch.tensor([0.5, 1.0])}, [TASKS[0]], "expected integer class labels"),
        ({"mask": torch.zeros(2, 3, 4, 4)}, [TASKS[3]], "expected dense labels (B, H, W)"),
        ({"value": torch.zeros(2, 2)}, [], "label_tasks: the conditional independence penalty"),
    ],
)
def test_label_matrix_refuses_what_it_cannot_code(batch, tasks, message):
    with pytest.raises(
        InvalidParameterError, match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        label_matrix(batch, tasks)


# ----------------------------------------------------------------------------------- objective


def _forward(n: int = 16) -> Forward:
    generator = torch.Generator().manual_seed(4)
    z_s = torch.randn(n, 4, generator=generator, requires_grad=True)
    z_r = torch.randn(n, 4, generator=generator, requires_grad=True)
    return Forward(predictions={}, shared=None, z_s=z_s, z_r=z_r)


def test_objective_independence_option_chooses_the_term():
    labels = {"label": torch.arange(16) % 3}
    settings = {"cfa_weight": 0.0, "reconstruction_weight": 0.0, "cka_warmup_steps": 0}
    forward = _forward()
    terms = {
        mode: CoreMTLObjective(independence=mode, label_tasks=(TASKS[0],), **settings).terms(
            None, labels, forward, step=0
        )
        for mode in ("unconditional", "conditional", "none")
    }
    assert list(terms["unconditional"]) == ["cka"] and terms["none"] == {}
    assert list(terms["conditional"]) == ["conditional_cka"]
    expected = conditional_linear_cka(forward.z_s, forward.z_r, label_matrix(labels, TASKS[:1]))
    torch.testing.assert_close(terms["conditional"]["conditional_cka"], 0.1 * expected)


def test_objective_refuses_an_unknown_mode_and_a_conditional_term_without_tasks():
    with pytest.raises(InvalidParameterError, match="independence: expected one of"):
        CoreMTLObjective(independence="partial")
    objective = CoreMTLObjective(independence="conditional", cka_warmup_steps=0, cfa_weight=0.0)
    with pytest.raises(InvalidParameterError, match="label_tasks: the conditional independence"):
        objective.terms(None, {}, _forward(), step=0)
    assert CoreMTLObjective().independence == "unconditional"


@pytest.mark.parametrize("tasks", [TASKS[:2], TASKS], ids=["classification", "with-dense"])
def test_train_runs_core_mtl_with_the_conditional_penalty(tasks):
    objective = CoreMTLObjective(independence="conditional", cka_warmup_steps=0)
    result = coremtl.train(
        "core-mtl", small_cnn(), tasks, image_data(32), epochs=2, batch_size=16, objective=objective
    )
    independence = result.preset.term_sources[-1].source
    assert independence.label_tasks == tuple(tasks)
    logged = result.history[-1]["train"]
    assert "term/conditional_cka" in logged and "term/cka" not in logged
    assert math.isfinite(logged["term/conditional_cka"])


def test_train_refuses_a_batch_too_small_for_the_labels():
    objective = CoreMTLObjective(independence="conditional")
    with pytest.raises(
        InvalidParameterError, match=r"batch_size: the conditional CKA .* at least 12"
    ):
        coremtl.train(
            "core-mtl", small_cnn(), TASKS, image_data(32), batch_size=8, objective=objective
        )


# ---------------------------------------------------------------------------------- vision


def test_a_vision_yaml_sets_the_conditional_penalty(tmp_path):
    from experiments.vision.config import load_config
    from experiments.vision.model.build import build_preset

    settings = yaml.safe_load((CONFIGS / "scenes_cpu_tiny.yaml").read_text())
    settings["method"]["independence"] = "conditional"
    settings["training"]["batch_size"] = 16
    path = tmp_path / "conditional.yaml"
    path.write_text(yaml.safe_dump(settings))
    config = load_config(path)
    assert config.method.independence == "conditional"
    objective = build_preset(config)[0].term_sources[-1].source
    assert objective.independence == "conditional"
    assert [(t.name, t.kind, t.outputs) for t in objective.label_tasks] == [
        ("segmentation", "dense", 5),
        ("depth", "dense", 1),
        ("normal", "dense", 3),
    ]
    batch = {
        "segmentation": torch.randint(-1, 5, (16, 8, 8)),
        "depth": torch.rand(16, 1, 8, 8),
        "normal": torch.rand(16, 3, 8, 8),
    }
    terms = objective.terms(None, batch, _forward(), step=10**6)
    assert math.isfinite(float(terms["conditional_cka"].detach()))
    settings["training"]["batch_size"] = 8
    path.write_text(yaml.safe_dump(settings))
    with pytest.raises(InvalidParameterError, match=r"^training\.batch_size: expected at least 13"):
        load_config(path)
    settings["method"]["independence"] = "partial"
    path.write_text(yaml.safe_dump(settings))
    with pytest.raises(InvalidParameterError, match=r"^method\.independence: expected one of"):
        load_config(path)
