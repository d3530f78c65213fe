"""Balancers: each runs, keeps its defining property, survives zero gradients and resumes exactly."""

from __future__ import annotations

import argparse
import copy
import io
import itertools
import math

import pytest
import torch
from fresh_interpreter import modules_loaded
from torch import Tensor, nn

from coremtl.balancers import BALANCER_NAMES, Balancer, balancer_options, make_balancer
from scm.validation import InvalidParameterError

TASKS_2 = ["a", "b"]
TASKS_3 = ["a", "b", "c"]

CONFLICTING = torch.tensor([[1.0, 0.5, -0.2], [-0.9, 0.3, 0.4]], dtype=torch.float64)
"""Two task gradients with <g_1, g_2> = -0.83 < 0."""

ALIGNED = torch.tensor([[1.0, 0.5, -0.2], [0.8, 0.1, 0.3]], dtype=torch.float64)
"""Two task gradients with <g_1, g_2> = 0.79 > 0."""

FLOAT64_TOL = 1e-10
"""Rounding of the closed forms in float64 on vectors of norm about 1."""


class TrunkModel(nn.Module):
    """A shared MLP trunk and one linear head per task; ``zero_task`` has an exactly zero gradient."""

    def __init__(self, tasks: list[str], zero_task: str | None = None, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.tasks = tasks
        self.zero_task = zero_task
        self.trunk = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 6))
        self.heads = nn.ModuleDict({t: nn.Linear(6, 1) for t in tasks})
        generator = torch.Generator().manual_seed(seed + 1)
        self.x = torch.randn(16, 4, generator=generator)
        self.y = {t: torch.randn(16, 1, generator=generator) for t in tasks}

    def losses(self) -> tuple[dict[str, Tensor], Tensor]:
        shared = self.trunk(self.x)
        losses = {}
        for t in self.tasks:
            prediction = self.heads[t](shared)
            if t == self.zero_task:
                losses[t] = 0.0 * prediction.sum() + 1.0
            else:
                losses[t] = ((prediction - self.y[t]) ** 2).mean() + 0.1
        return losses, shared

    def step(self, balancer: Balancer, extra_weight: float = 0.0) -> dict[str, float]:
        for p in [*self.parameters(), *balancer.parameters()]:
            p.grad = None
        losses, shared = self.losses()
        extra = extra_weight * shared.pow(2).mean() if extra_weight else None
        return balancer.backward(losses, shared, list(self.trunk.parameters()), extra)

    def gradients(self) -> list[Tensor]:
        return [p.grad.clone() for p in self.parameters()]


def sgd_step(model: TrunkModel, balancer: Balancer, lr: float = 0.1) -> None:
    with torch.no_grad():
        for p in [*model.parameters(), *balancer.parameters()]:
            p -= lr * p.grad
    if balancer.needs_losses_after_step:
        with torch.no_grad():
            balancer.after_step(model.losses()[0])
    balancer.end_epoch()


def linear_update(name: str, gradients: Tensor, **options) -> tuple[Tensor, Tensor]:
    """The update and weights of ``name`` when task ``i`` has loss ``<g_i, h>`` with ``h = theta``.

    The Jacobian of the losses with respect to ``theta`` is then exactly ``gradients``.
    """
    theta = torch.zeros(gradients.shape[1], dtype=gradients.dtype, requires_grad=True)
    shared = theta * 1.0
    tasks = [f"t{i}" for i in range(len(gradients))]
    losses = {t: g @ shared for t, g in zip(tasks, gradients, strict=True)}
    weights = make_balancer(name, tasks, **options).backward(losses, shared, [theta])
    return theta.grad, torch.tensor([weights[t] for t in tasks], dtype=gradients.dtype)


def scalar_weights(name: str, values: list[float], **options) -> Tensor:
    """Weights ``dS/dL_i`` of a loss-weighting method at losses ``values``."""
    theta = torch.ones(len(values), dtype=torch.float64, requires_grad=True)
    losses_vector = theta * torch.tensor(values, dtype=torch.float64)
    tasks = [f"t{i}" for i in range(len(values))]
    losses = dict(zip(tasks, losses_vector.unbind(), strict=True))
    balancer = make_balancer(name, tasks, **options)
    weights = balancer.backward(losses, theta, [theta])
    result = torch.tensor([weights[t] for t in tasks], dtype=torch.float64)
    torch.testing.assert_close(theta.grad, result * torch.tensor(values, dtype=torch.float64))
    return result


# ---------------------------------------------------------------- every balancer


@pytest.mark.parametrize("name", BALANCER_NAMES)
def test_every_balancer_gives_finite_gradients_to_all_parameters(name):
    tasks = TASKS_2
    model = TrunkModel(tasks)
    balancer = make_balancer(name, tasks)
    weights = model.step(balancer, extra_weight=0.5)
    assert set(weights) == set(tasks)
    assert all(math.isfinite(w) for w in weights.values())
    for p in model.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all()
    assert any(p.grad.abs().sum() > 0 for p in model.trunk.parameters())


@pytest.mark.parametrize("name", BALANCER_NAMES)
def test_no_nan_when_a_task_gradient_is_exactly_zero(name):
    model = TrunkModel(TASKS_3, zero_task="c")
    balancer = make_balancer(name, TASKS_3)
    for _ in range(2):
        weights = model.step(balancer)
        assert all(math.isfinite(w) for w in weights.values())
        for p in model.parameters():
            assert torch.isfinite(p.grad).all()
        sgd_step(model, balancer)


@pytest.mark.parametrize("name", ["ew", "upgrad", "config", "gradnorm", "uw"])
def test_a_constant_task_loss_is_accepted_and_leaves_gradients_finite(name):
    model = TrunkModel(TASKS_2)
    losses, shared = model.losses()
    losses["b"] = torch.tensor(0.7)
    balancer = make_balancer(name, TASKS_2)
    weights = balancer.backward(losses, shared, list(model.trunk.parameters()))
    assert all(math.isfinite(w) for w in weights.values())
    for p in [*model.trunk.parameters(), *model.heads["a"].parameters()]:
        assert p.grad is not None and torch.isfinite(p.grad).all()
    assert all(p.grad is None for p in model.heads["b"].parameters())


@pytest.mark.parametrize("name", BALANCER_NAMES)
def test_state_dict_round_trip_reproduces_the_next_step_exactly(name):
    model = TrunkModel(TASKS_3)
    balancer = make_balancer(name, TASKS_3)
    for _ in range(2):
        model.step(balancer)
        sgd_step(model, balancer)
    buffer = io.BytesIO()
    torch.save(balancer.state_dict(), buffer)
    buffer.seek(0)
    resumed = make_balancer(name, TASKS_3)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    twin = copy.deepcopy(model)
    for p, q in zip(resumed.parameters(), balancer.parameters(), strict=True):
        assert torch.equal(p, q)
    assert twin.step(resumed) == model.step(balancer)
    for g, h in zip(twin.gradients(), model.gradients(), strict=True):
        assert torch.equal(g, h)


@pytest.mark.parametrize("name", BALANCER_NAMES)
def test_losses_sharing_one_stacked_head_and_loss_call_give_the_separate_heads_gradients(name):
    """Task losses from one LinearHeads output and one loss call (graphs that meet after the
    shared representation) get the gradients of separate heads and separate loss calls."""
    from coremtl.representation import LinearHeads

    model = TrunkModel(TASKS_3)
    trunk = copy.deepcopy(model.trunk)
    heads = LinearHeads.from_linear(model.heads)
    targets = torch.cat([model.y[t] for t in TASKS_3], dim=1)
    model.step(make_balancer(name, TASKS_3), extra_weight=0.5)
    shared = trunk(model.x)
    vector = ((heads(shared).stacked - targets) ** 2).mean(dim=0) + 0.1
    extra = 0.5 * shared.pow(2).mean()
    make_balancer(name, TASKS_3).backward(
        dict(zip(TASKS_3, vector.unbind(), strict=True)), shared, list(trunk.parameters()), extra
    )
    for p, q in zip(model.trunk.parameters(), trunk.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(
        heads.linear.weight.grad, torch.cat([model.heads[t].weight.grad for t in TASKS_3])
    )


def test_the_extra_loss_is_added_with_weight_one_for_aggregators():
    model = TrunkModel(TASKS_2)
    balancer = make_balancer("upgrad", TASKS_2)
    model.step(balancer)
    without = model.gradients()
    model.step(balancer, extra_weight=0.5)
    with_extra = model.gradients()
    for p in model.parameters():
        p.grad = None
    _, shared = model.losses()
    (0.5 * shared.pow(2).mean()).backward()
    for g0, g1, p in zip(without, with_extra, model.parameters(), strict=True):
        expected = g0 + (p.grad if p.grad is not None else 0.0)
        torch.testing.assert_close(g1, expected, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------- defining properties


@pytest.mark.parametrize("gradients", [CONFLICTING, ALIGNED], ids=["conflicting", "aligned"])
def test_equal_weighting_is_the_plain_sum(gradients):
    update, weights = linear_update("ew", gradients)
    torch.testing.assert_close(update, gradients.sum(0), rtol=0, atol=FLOAT64_TOL)
    assert weights.tolist() == [1.0, 1.0]


def test_equal_weighting_matches_backward_of_the_summed_losses():
    model = TrunkModel(TASKS_3)
    model.step(make_balancer("ew", TASKS_3))
    balanced = model.gradients()
    for p in model.parameters():
        p.grad = None
    losses, _ = model.losses()
    sum(losses.values()).backward()
    for g, p in zip(balanced, model.parameters(), strict=True):
        torch.testing.assert_close(g, p.grad)


def test_pcgrad_projects_out_the_conflicting_component():
    g1, g2 = CONFLICTING
    update, _ = linear_update("pcgrad", CONFLICTING)
    projected_1 = g1 - (g1 @ g2) / (g2 @ g2) * g2
    projected_2 = g2 - (g2 @ g1) / (g1 @ g1) * g1
    assert projected_1 @ g2 >= -FLOAT64_TOL and projected_2 @ g1 >= -FLOAT64_TOL
    torch.testing.assert_close(update, projected_1 + projected_2, rtol=0, atol=FLOAT64_TOL)


def test_pcgrad_leaves_non_conflicting_gradients_unchanged():
    update, _ = linear_update("pcgrad", ALIGNED)
    torch.testing.assert_close(update, ALIGNED.sum(0), rtol=0, atol=FLOAT64_TOL)


@pytest.mark.parametrize("gradients", [CONFLICTING, ALIGNED], ids=["conflicting", "aligned"])
def test_mgda_returns_the_min_norm_point_of_the_convex_hull(gradients):
    g1, g2 = gradients
    gamma = ((g2 - g1) @ g2 / ((g1 - g2) @ (g1 - g2))).clamp(0.0, 1.0)
    expected = gamma * g1 + (1 - gamma) * g2
    update, weights = linear_update("mgda", gradients, epsilon=1e-12, max_iters=10_000)
    torch.testing.assert_close(update, expected, rtol=0, atol=1e-8)
    torch.testing.assert_close(weights.sum(), torch.tensor(1.0, dtype=torch.float64))


@pytest.mark.parametrize("name", ["upgrad", "dualproj"])
@pytest.mark.parametrize("gradients", [CONFLICTING, ALIGNED], ids=["conflicting", "aligned"])
def test_upgrad_and_dualproj_updates_do_not_conflict_with_any_task(name, gradients):
    update, _ = linear_update(name, gradients)
    assert (gradients @ update >= -1e-9).all()
    assert update.norm() > 0


def test_imtl_g_gives_equal_projections_on_every_unit_task_gradient():
    update, weights = linear_update("imtl", CONFLICTING)
    projections = CONFLICTING @ update / CONFLICTING.norm(dim=1)
    torch.testing.assert_close(projections[0], projections[1], rtol=0, atol=FLOAT64_TOL)
    torch.testing.assert_close(weights.sum(), torch.tensor(1.0, dtype=torch.float64))


@pytest.mark.parametrize("c", [0.0, 0.5])
def test_cagrad_update_lies_on_the_ball_around_the_mean_gradient(c):
    mean = CONFLICTING.mean(0)
    update, _ = linear_update("cagrad", CONFLICTING, c=c)
    torch.testing.assert_close((update - mean).norm(), c * mean.norm(), rtol=1e-6, atol=FLOAT64_TOL)
    assert (CONFLICTING @ update).min() >= (CONFLICTING @ mean).min() - 1e-9


@pytest.mark.parametrize("alpha", [1.0, 2.0])
def test_fairgrad_weights_solve_the_alpha_fair_optimality_condition(alpha):
    gram = CONFLICTING @ CONFLICTING.T
    _, weights = linear_update("fairgrad", CONFLICTING, alpha=alpha)
    torch.testing.assert_close(gram @ weights, weights ** (-1.0 / alpha), rtol=1e-6, atol=0)


def test_nashmtl_weights_solve_the_bargaining_condition():
    gram = CONFLICTING @ CONFLICTING.T
    _, weights = linear_update("nashmtl", CONFLICTING, max_norm=0.0, optim_niter=100)
    residual = (gram @ weights - 1.0 / weights).norm()
    assert residual <= 1e-3 * (1.0 / weights).norm()


def test_aligned_mtl_update_has_the_norm_of_the_smallest_singular_direction():
    gram = CONFLICTING @ CONFLICTING.T
    update, _ = linear_update("alignedmtl", CONFLICTING)
    expected = torch.linalg.eigvalsh(gram)[0] / len(gram)
    torch.testing.assert_close(update @ update, expected, rtol=1e-9, atol=0)


def test_config_update_makes_equal_angles_with_every_task_gradient():
    update, _ = linear_update("config", CONFLICTING)
    cosines = CONFLICTING @ update / (CONFLICTING.norm(dim=1) * update.norm())
    torch.testing.assert_close(cosines[0], cosines[1], rtol=0, atol=FLOAT64_TOL)
    assert cosines[0] > 0


def test_gradvac_first_step_with_zero_targets_equals_pcgrad():
    update, _ = linear_update("gradvac", CONFLICTING, eps=0.0)
    expected, _ = linear_update("pcgrad", CONFLICTING)
    torch.testing.assert_close(update, expected, rtol=0, atol=FLOAT64_TOL)


def test_graddrop_keeps_one_sign_per_coordinate():
    gradients = torch.tensor([[1.0, -0.5, 0.3, 2.0], [-0.4, -0.1, 0.2, -2.0]], dtype=torch.float64)
    positive = gradients.clamp_min(0).sum(0)
    negative = gradients.clamp_max(0).sum(0)
    for seed in range(4):
        update, _ = linear_update("graddrop", gradients, seed=seed)
        for k in range(gradients.shape[1]):
            assert update[k] in (positive[k], negative[k])
        torch.testing.assert_close(update[1:3], gradients.sum(0)[1:3], rtol=0, atol=0)


def test_uw_weights_and_log_variance_gradient_follow_kendall_et_al():
    losses = [0.5, 2.0]
    weights = scalar_weights("uw", losses)
    torch.testing.assert_close(weights, torch.full((2,), 0.5, dtype=torch.float64))
    balancer = make_balancer("uw", TASKS_2)
    (log_variance,) = balancer.parameters()
    balancer.backward({"a": torch.tensor(0.5), "b": torch.tensor(2.0)}, torch.zeros(1), [], None)
    expected = 0.5 - 0.5 * torch.tensor(losses)
    torch.testing.assert_close(log_variance.grad, expected)


def test_dwa_weights_are_k_times_softmax_of_the_loss_ratios():
    balancer = make_balancer("dwa", TASKS_2, temperature=2.0)
    for loss_a, loss_b in [(1.0, 1.0), (0.5, 0.9)]:
        weights = balancer.backward(
            {
                "a": torch.tensor(loss_a, requires_grad=True),
                "b": torch.tensor(loss_b, requires_grad=True),
            },
            torch.zeros(1),
            [],
        )
        balancer.end_epoch()
        assert weights == {"a": 1.0, "b": 1.0}
    rates = torch.tensor([0.5 / 1.0, 0.9 / 1.0])
    expected = 2 * torch.softmax(rates / 2.0, dim=0)
    weights = balancer.backward(
        {"a": torch.tensor(0.2, requires_grad=True), "b": torch.tensor(0.8, requires_grad=True)},
        torch.zeros(1),
        [],
    )
    torch.testing.assert_close(torch.tensor([weights["a"], weights["b"]]), expected)


def test_rlw_weights_are_a_seeded_random_point_of_the_simplex():
    first = scalar_weights("rlw", [1.0, 2.0, 3.0], seed=7)
    again = scalar_weights("rlw", [1.0, 2.0, 3.0], seed=7)
    other = scalar_weights("rlw", [1.0, 2.0, 3.0], seed=8)
    assert (first > 0).all()
    torch.testing.assert_close(first.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_stochastic_balancers_leave_the_global_random_stream_untouched():
    state = torch.get_rng_state()
    linear_update("graddrop", CONFLICTING)
    scalar_weights("rlw", [1.0, 2.0])
    assert torch.equal(torch.get_rng_state(), state)


def test_stch_weights_are_the_gradient_of_the_smooth_maximum():
    losses = torch.tensor([0.5, 2.0, 1.0], dtype=torch.float64)
    mu = 0.3
    weights = scalar_weights("stch", losses.tolist(), mu=mu)
    expected = torch.softmax(losses / (3 * mu), dim=0) / 3
    torch.testing.assert_close(weights, expected)


def test_famo_weights_form_a_convex_combination_inversely_proportional_to_the_losses():
    losses = torch.tensor([0.5, 2.0], dtype=torch.float64)
    weights = scalar_weights("famo", losses.tolist())
    torch.testing.assert_close(weights.sum(), torch.tensor(1.0, dtype=torch.float64))
    torch.testing.assert_close(weights[0] * losses[0], weights[1] * losses[1], rtol=1e-6, atol=0)


def test_famo_favours_the_task_whose_loss_decreased_least():
    balancer = make_balancer("famo", TASKS_2)
    assert balancer.needs_losses_after_step
    values = {
        "a": torch.tensor(1.0, requires_grad=True),
        "b": torch.tensor(1.0, requires_grad=True),
    }
    balancer.backward(values, torch.zeros(1), [])
    balancer.after_step({"a": torch.tensor(0.5), "b": torch.tensor(0.99)})
    values = {
        "a": torch.tensor(1.0, requires_grad=True),
        "b": torch.tensor(1.0, requires_grad=True),
    }
    weights = balancer.backward(values, torch.zeros(1), [])
    assert weights["b"] > weights["a"]


def test_gls_weights_are_the_gradient_of_the_geometric_mean():
    losses = torch.tensor([0.5, 2.0, 1.5], dtype=torch.float64)
    weights = scalar_weights("gls", losses.tolist())
    geometric_mean = losses.log().mean().exp()
    torch.testing.assert_close(weights, geometric_mean / (3 * losses))


def test_gradnorm_weights_sum_to_k_and_move_towards_balanced_gradient_norms():
    model = TrunkModel(TASKS_2)
    with torch.no_grad():
        model.heads["a"].weight *= 5.0
    balancer = make_balancer("gradnorm", TASKS_2, lr=0.05)
    used = model.step(balancer)
    assert used == {"a": 1.0, "b": 1.0}
    first_norms = balancer.last_gradient_norms.clone()
    assert first_norms[0] > first_norms[1]
    gaps = [float((first_norms[0] - first_norms[1]).abs())]
    for _ in range(3):
        used = model.step(balancer)
        norms = balancer.last_gradient_norms
        gaps.append(float((norms[0] - norms[1]).abs()))
        assert math.isclose(sum(used.values()), 2.0, rel_tol=1e-6)
    assert used["a"] < 1.0 < used["b"]
    assert all(later < earlier for earlier, later in itertools.pairwise(gaps))


def test_gradnorm_network_gradient_is_that_of_the_weighted_sum():
    model = TrunkModel(TASKS_2)
    balancer = make_balancer("gradnorm", TASKS_2)
    model.step(balancer)
    used = model.step(balancer)
    balanced = model.gradients()
    for p in model.parameters():
        p.grad = None
    losses, _ = model.losses()
    sum(used[t] * loss for t, loss in losses.items()).backward()
    for g, p in zip(balanced, model.parameters(), strict=True):
        torch.testing.assert_close(g, p.grad)


def test_gradnorm_target_is_the_mean_norm_times_the_inverse_training_rate_to_the_alpha():
    balancer = make_balancer("gradnorm", TASKS_2, alpha=2.0)
    balancer.initial_losses = torch.tensor([1.0, 2.0])
    weights = torch.tensor([0.5, 1.5])
    norms = torch.tensor([2.0, 1.0])
    losses = torch.tensor([0.5, 2.0])
    ratios = torch.tensor([0.5, 1.0])
    expected = (weights * norms).mean() * (ratios / ratios.mean()) ** 2.0
    torch.testing.assert_close(balancer.gradnorm_targets(weights, norms, losses), expected)


# ---------------------------------------------------------------- errors


def test_unknown_balancer_name_lists_the_valid_names():
    with pytest.raises(InvalidParameterError, match=r"unknown name 'sgd'.*ew, gradnorm, pcgrad"):
        make_balancer("sgd", TASKS_2)


@pytest.mark.parametrize("name", ["ew", "cagrad", "gradnorm", "rlw"])
def test_unknown_option_is_named_with_the_valid_ones(name):
    listing = ", ".join([*sorted(balancer_options(name)), "device"])
    with pytest.raises(
        InvalidParameterError, match=rf"unknown option\(s\) bogus; valid options: {listing}"
    ):
        make_balancer(name, TASKS_2, bogus=1)


@pytest.mark.parametrize(
    ("name", "options", "pattern"),
    [
        ("stch", {"mu": 0.0}, r"'stch'.*mu"),
        ("cagrad", {"c": -1.0}, r"'cagrad'.*c must be non-negative"),
        ("dwa", {"temperature": 0.0}, r"'dwa'.*temperature"),
        ("gradnorm", {"alpha": -1.0}, r"alpha: expected a non-negative number"),
        ("gradnorm", {"lr": 0.0}, r"lr: expected a positive number"),
    ],
)
def test_invalid_option_values_are_rejected_with_their_name(name, options, pattern):
    with pytest.raises(InvalidParameterError, match=pattern):
        make_balancer(name, TASKS_2, **options)


@pytest.mark.parametrize("task_names", [[], ["a", "a"], ["a", ""]])
def test_task_names_must_be_unique_non_empty_strings(task_names):
    with pytest.raises(InvalidParameterError, match="task_names"):
        make_balancer("ew", task_names)


@pytest.mark.parametrize("name", ["ew", "upgrad", "gradnorm"])
def test_task_losses_must_match_the_task_names(name):
    model = TrunkModel(TASKS_2)
    losses, shared = model.losses()
    balancer = make_balancer(name, TASKS_3)
    with pytest.raises(
        InvalidParameterError, match=r"task_losses: expected keys \['a', 'b', 'c'\]"
    ):
        balancer.backward(losses, shared, list(model.trunk.parameters()))


def test_task_losses_must_be_scalars():
    balancer = make_balancer("ew", TASKS_2)
    with pytest.raises(InvalidParameterError, match=r"task_losses\['a'\]: expected a scalar"):
        balancer.backward({"a": torch.ones(2), "b": torch.ones(())}, torch.zeros(1), [])


@pytest.mark.parametrize("name", ["pcgrad", "famo", "gradnorm"])
def test_load_state_dict_rejects_a_state_of_another_balancer(name):
    with pytest.raises(InvalidParameterError, match=rf"state of balancer '{name}': expected keys"):
        make_balancer(name, TASKS_2).load_state_dict({"something_else": torch.ones(2)})


@pytest.mark.parametrize("name", ["uw", "famo", "gradnorm", "ew"])
def test_device_option_places_the_balancer_state(name):
    balancer = make_balancer(name, TASKS_2, device="cpu")
    model = TrunkModel(TASKS_2)
    assert all(math.isfinite(w) for w in model.step(balancer).values())
    assert all(p.device.type == "cpu" for p in balancer.parameters())


def test_balancer_benchmark_reports_a_ratio_for_every_balancer():
    from coremtl.balancers.benchmark import main

    result = main(argparse.Namespace(device="cpu", repeats=1, quick=True))
    assert set(result["ratio_to_ew"]) == set(BALANCER_NAMES)
    assert result["ratio_to_ew"]["ew"] == 1.0
    assert all(r > 0 for r in result["ratio_to_ew"].values())


def test_gradnorm_runs_on_float64_losses():
    model = TrunkModel(TASKS_2).double()
    model.x, model.y = model.x.double(), {t: y.double() for t, y in model.y.items()}
    balancer = make_balancer("gradnorm", TASKS_2, lr=0.05)
    for _ in range(2):
        used = model.step(balancer)
    assert math.isclose(sum(used.values()), 2.0, rel_tol=1e-9)
    assert all(torch.isfinite(g).all() for g in model.gradients())


# ---------------------------------------------------------------- the registry


@pytest.mark.parametrize("name", BALANCER_NAMES)
def test_every_registered_name_builds_a_balancer_of_that_name(name):
    balancer = make_balancer(name, TASKS_2)
    assert isinstance(balancer, Balancer)
    assert balancer.name == name
    assert set(balancer_options(name)) == set(type(balancer).option_defaults())


def test_the_registry_is_the_only_list_of_balancer_names():
    """No module of ``coremtl.balancers`` but the registry spells out a list of balancer names:
    every other module names the methods it defines and at most one other (the benchmark's
    reference, EW)."""
    import pathlib

    from coremtl.balancers import BALANCERS

    assert tuple(BALANCERS) == BALANCER_NAMES
    folder = pathlib.Path(make_balancer.__code__.co_filename).parent
    for path in folder.glob("*.py"):
        if path.name == "registry.py":
            continue
        text = path.read_text()
        quoted = {name for name in BALANCER_NAMES if f'name = "{name}"' in text}
        mentioned = {name for name in BALANCER_NAMES if f'"{name}"' in text}
        assert len(mentioned - quoted) <= 1, f"{path.name} lists {sorted(mentioned - quoted)}"


def test_importing_the_registry_does_not_import_torchjd():
    assert "torchjd" not in modules_loaded("import coremtl.balancers")
