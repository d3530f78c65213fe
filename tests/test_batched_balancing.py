"""The batched balancers (coremtl.batched.balancing, coremtl.batched.faces) against torchjd.

Every weighting is checked model by model against torchjd's weighting and aggregator on one batch
of float64 Jacobians per task count: random ones and the degenerate cases (conflicting gradients,
opposite ones, also of equal norms, parallel ones, a zero gradient, an all-zero Jacobian, one below
torchjd's normalisation threshold ``||J||_F^2 < 1e-4``, a row that is the sum of two others, more
tasks than parameters).
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torchjd import aggregation

from coremtl.balancers import make_balancer
from coremtl.batched import Settings, draws, train_objective
from coremtl.batched.balancing import (
    alignedmtl_weights,
    cagrad_weights,
    dualproj_weights,
    imtl_weights,
    normalized,
    projection_gramian,
    rlw_weights,
    task_weights,
    upgrad_weights,
)
from coremtl.batched.faces import MAX_TASKS, cagrad_simplex, dual_cone_weights
from coremtl.batched.stacked import StackedAngle
from scm.validation import InvalidParameterError

TASK_COUNTS = (2, 3, 4)
PARAMETERS = 5

EXACT_RTOL, EXACT_ATOL = 1e-10, 1e-13
"""Both sides are exact in float64 (pinv, eigh; an exact solve on the optimal face against
quadprog's exact active-set method): they differ by the rounding of ``K x K`` factorisations of
condition at most ``(1 + reg_eps) / reg_eps = 1e4`` for the projections, about 2e-12 relative."""

CLARABEL_GAP = 1e-8
"""Clarabel's default absolute duality-gap tolerance (``tol_gap_abs``), where torchjd's CAGrad
stops: its objective may exceed the optimum by this much."""


def jacobians(num_tasks: int) -> torch.Tensor:
    """Random Jacobians ``(M, K, P)``; models 0-8 are the degenerate cases."""
    generator = torch.Generator().manual_seed(num_tasks)
    jacobian = torch.randn(16, num_tasks, PARAMETERS, generator=generator, dtype=torch.float64)
    jacobian[0, 1] = -0.7 * jacobian[0, 0] + 0.1 * jacobian[0, 1]
    jacobian[1, 1] = -0.7 * jacobian[1, 0]
    jacobian[2, 1] = 2.0 * jacobian[2, 0]
    jacobian[3, 0] = 0.0
    jacobian[4] = 0.0
    jacobian[5] *= 1e-3
    jacobian[6, -1] = jacobian[6, 0] + jacobian[6, 1]
    jacobian[7, :, 2:] = 0.0
    jacobian[8, 1] = -jacobian[8, 0]
    return jacobian


def gramians(jacobian: torch.Tensor) -> torch.Tensor:
    return torch.bmm(jacobian, jacobian.transpose(1, 2))


EXACT = {
    "imtl": (imtl_weights, aggregation.IMTLG, {}),
    "alignedmtl": (alignedmtl_weights, aggregation.AlignedMTL, {}),
    "alignedmtl-median": (
        lambda g: alignedmtl_weights(g, "median"),
        aggregation.AlignedMTL,
        {"scale_mode": "median"},
    ),
    "alignedmtl-rmse": (
        lambda g: alignedmtl_weights(g, "rmse"),
        aggregation.AlignedMTL,
        {"scale_mode": "rmse"},
    ),
    "upgrad": (upgrad_weights, aggregation.UPGrad, {}),
    "dualproj": (dualproj_weights, aggregation.DualProj, {}),
}


@pytest.mark.parametrize("tasks", TASK_COUNTS)
@pytest.mark.parametrize("name", list(EXACT))
def test_exact_batched_weightings_equal_torchjd(name, tasks):
    batched, aggregator_class, options = EXACT[name]
    jacobian = jacobians(tasks)
    weights = batched(gramians(jacobian))
    aggregator = aggregator_class(**options)
    for m in range(jacobian.shape[0]):
        expected = aggregator.gramian_weighting(gramians(jacobian[m : m + 1])[0])
        torch.testing.assert_close(weights[m], expected, rtol=EXACT_RTOL, atol=EXACT_ATOL)
        torch.testing.assert_close(
            jacobian[m].T @ weights[m], aggregator(jacobian[m]), rtol=EXACT_RTOL, atol=EXACT_ATOL
        )


@pytest.mark.parametrize("tasks", TASK_COUNTS)
def test_dual_cone_projection_equals_quadprog_for_any_vectors(tasks):
    jacobian = jacobians(tasks)
    generator = torch.Generator().manual_seed(10 + tasks)
    u = torch.randn(jacobian.shape[0], 3, tasks, generator=generator, dtype=torch.float64)
    gramian = gramians(jacobian)
    projected = dual_cone_weights(u, projection_gramian(gramian))
    projector = aggregation.UPGrad().projector
    for m in range(jacobian.shape[0]):
        expected = projector(u[m], gramian[m])
        torch.testing.assert_close(projected[m], expected, rtol=EXACT_RTOL, atol=EXACT_ATOL)
    assert bool((projected >= u).all())


def cagrad_objective(gramian: torch.Tensor, s: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    mean = gramian.sum(dim=-1) / gramian.shape[-1]
    norm = torch.einsum("...i,...ij,...j->...", w, gramian, w).clamp_min(0).sqrt()
    return (w * mean).sum(-1) + s * norm


@pytest.mark.parametrize("tasks", TASK_COUNTS)
def test_batched_cagrad_reaches_torchjd_objective_within_clarabel_gap(tasks):
    """torchjd's weights ``1/K + (s/||g_w||) w*`` give back its ``w*`` (Clarabel's may leave the
    simplex by its feasibility tolerance, so it is clipped back onto it); the batched ``w*`` scores
    no worse, and at most Clarabel's gap better, on torchjd's problem; where torchjd returns 0
    (``||g_w|| < norm_eps``, e.g. ``||J||_F^2 < 1e-4``) so does the batched one."""
    c = 0.5
    jacobian = jacobians(tasks)
    gramian = gramians(jacobian)
    weights = cagrad_weights(gramian, c)
    unit = normalized(gramian)
    s = c * unit.sum(dim=(1, 2)).sqrt() / tasks
    ours = cagrad_simplex(unit, s)
    weighting = aggregation.CAGradWeighting(c)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        expected = torch.stack([weighting(gramian[m]) for m in range(jacobian.shape[0])])
    zero = (expected == 0).all(dim=1)
    assert bool(zero[4]) and bool(zero[5])
    assert bool((weights[zero] == 0).all())
    excess = expected[~zero] - 1.0 / tasks
    theirs = excess.clamp_min(0) / excess.clamp_min(0).sum(dim=1, keepdim=True)
    gap = cagrad_objective(unit[~zero], s[~zero], theirs) - cagrad_objective(
        unit[~zero], s[~zero], ours[~zero]
    )
    assert bool((gap >= -1e-15).all())
    assert bool((gap <= CLARABEL_GAP).all())


@pytest.mark.parametrize("tasks", (*TASK_COUNTS, 8))
def test_batched_cagrad_direction_satisfies_the_optimality_conditions(tasks):
    """KKT on the simplex: with ``grad = b + s G w / ||g_w||`` and ``mu = w^T grad``,
    ``grad_i >= mu`` for every task and ``w_i (grad_i - mu) = 0``, to float64 rounding, wherever
    the objective is differentiable at the solution (``g_w != 0``) and not constant (``s > 0``)."""
    jacobian = jacobians(tasks)
    unit = normalized(gramians(jacobian))
    s = 0.5 * unit.sum(dim=(1, 2)).sqrt() / tasks
    w = cagrad_simplex(unit, s)
    assert bool((w >= 0).all())
    torch.testing.assert_close(w.sum(dim=1), torch.ones(w.shape[0], dtype=w.dtype))
    norm = torch.einsum("mi,mij,mj->m", w, unit, w).sqrt()
    smooth = (norm > 1e-4) & (s > 0)
    grad = (
        unit.sum(dim=2) / tasks
        + s[:, None] * torch.einsum("mij,mj->mi", unit, w) / (norm.clamp_min(1e-300)[:, None])
    )
    mu = (w * grad).sum(dim=1, keepdim=True)
    scale = grad.abs().amax(dim=1, keepdim=True)
    residual = (grad - mu) / scale
    assert int(smooth.sum()) >= jacobian.shape[0] // 2
    assert float(residual[smooth].min()) > -1e-12
    assert float((w * residual)[smooth].abs().max()) < 1e-12


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_rlw_weights_are_the_library_rlw_draws(dtype):
    """Model ``m`` at step ``k``: softmax of :meth:`Draws.balancer_normals` equals the weights the
    library's RLW with seed ``balancer_seed(m)`` returns at its call ``k``."""
    settings = Settings(steps=4, lr=0.1, balancer="rlw")
    random = draws(settings, 3, 8, 3, 11)
    names = ["a", "b", "c"]
    for m in range(3):
        balancer = make_balancer("rlw", names, seed=random.balancer_seed(m))
        for step in range(4):
            parameter = torch.nn.Parameter(torch.ones(2, dtype=dtype))
            losses = {name: (i + 1.0) * parameter.sum() for i, name in enumerate(names)}
            library = balancer.backward(losses, [parameter], [parameter])
            ours = rlw_weights(random.balancer_normals(step, [m], dtype))[0]
            assert ours.dtype == dtype
            assert ours.tolist() == [library[n] for n in names]
    first = random.balancer_normals(0, [0, 1], torch.float64)
    assert not torch.equal(first[0], first[1])
    assert not torch.equal(first[0], random.balancer_normals(1, [0], torch.float64)[0])


def test_task_weights_pass_the_registry_options():
    jacobian = jacobians(3)
    gramian = gramians(jacobian)
    torch.testing.assert_close(
        task_weights("cagrad", gramian, c=0.3), cagrad_weights(gramian, 0.3), rtol=0, atol=0
    )
    assert not torch.allclose(task_weights("cagrad", gramian), cagrad_weights(gramian, 0.3))
    torch.testing.assert_close(
        task_weights("alignedmtl", gramian, scale_mode="rmse"),
        alignedmtl_weights(gramian, "rmse"),
        rtol=0,
        atol=0,
    )


def test_bad_balancer_inputs_are_one_line_errors():
    gramian = gramians(jacobians(2))
    with pytest.raises(InvalidParameterError, match="tasks: the exact batched solvers"):
        upgrad_weights(torch.eye(MAX_TASKS + 1, dtype=torch.float64)[None])
    with pytest.raises(InvalidParameterError, match="c: expected a number > 0"):
        cagrad_weights(gramian, 0.0)
    with pytest.raises(InvalidParameterError, match="scale_mode: expected one of"):
        alignedmtl_weights(gramian, "mean")
    with pytest.raises(InvalidParameterError, match="'rlw' weights the losses"):
        task_weights("rlw", gramian)
    with pytest.raises(InvalidParameterError, match="cagrad_c: expected a number > 0"):
        Settings(steps=1, lr=0.1, balancer="cagrad", cagrad_c=-1.0)
    with pytest.raises(InvalidParameterError, match="steps: expected an integer >= 0"):
        Settings(steps=-1, lr=0.1)
    mixing = torch.eye(4, dtype=torch.float64)
    model = StackedAngle(
        mixing[None], torch.tensor([0.3]).double(), torch.ones(1, 2, 2).double(),
        torch.zeros(1, 1, 2).double(),
    )  # fmt: skip

    def objective(step):
        risk = model.params["psi"].square()
        return torch.stack([risk, 2 * risk], dim=1), torch.zeros(1, dtype=torch.float64)

    with pytest.raises(InvalidParameterError, match="random: RLW draws its weights"):
        train_objective(model, Settings(steps=1, lr=0.1, balancer="rlw"), objective)
