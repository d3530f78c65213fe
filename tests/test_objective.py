"""CoreMTLObjective: which terms are active when, and what each one equals."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from coremtl import defaults
from coremtl.cka import linear_cka
from coremtl.counterfactual import counterfactual_predictions, derangement
from coremtl.forward import Forward
from coremtl.grounding import MLPDecoder
from coremtl.objective import CoreMTLObjective, cka_penalty
from coremtl.representation import LinearHeads, mlp_dual_stream
from scm.validation import InvalidParameterError


def task_losses_fn(predictions, batch):
    return {
        name: F.mse_loss(predictions[name][:, 0], batch["y"][:, i])
        for i, name in enumerate(("a", "b"))
    }


OLD_ZERO_SETTINGS = {
    "cka_weight": 0.0,
    "cka_warmup_steps": 0,
    "cfa_weight": 0.0,
    "cfa_probability": 1.0,
    "reconstruction_weight": 0.0,
    "cfa_mode": "feature",
}


def weights_only(**settings) -> CoreMTLObjective:
    """An objective with only the given terms switched on (every other weight 0, CFA at every
    step, no warm-up, feature-level CFA unless said otherwise)."""
    return CoreMTLObjective(**{**OLD_ZERO_SETTINGS, **settings})


@pytest.fixture
def setup():
    torch.manual_seed(0)
    model = mlp_dual_stream(
        6,
        ["a", "b"],
        hidden=(16,),
        semantic_dim=3,
        residual_dim=3,
        decoder=MLPDecoder(3, 3, 6, (8,)),
    )
    generator = torch.Generator().manual_seed(0)
    batch = {
        "x": torch.randn(8, 6, generator=generator),
        "y": torch.randn(8, 2, generator=generator),
    }
    return model, batch, model(batch["x"])


def test_no_weights_means_no_terms(setup):
    model, batch, forward = setup
    assert weights_only().terms(model, batch, forward, step=10) == {}


@pytest.mark.parametrize(("step", "fraction"), [(0, 0.0), (5, 0.5), (10, 1.0), (50, 1.0)])
def test_cka_weight_ramps_linearly_during_warmup(step, fraction):
    objective = weights_only(cka_weight=0.4, cka_warmup_steps=10)
    assert objective.cka_weight_at(step) == pytest.approx(0.4 * fraction)


def test_cka_term_is_the_weighted_debiased_cka_of_the_streams(setup):
    model, batch, forward = setup
    objective = weights_only(cka_weight=0.4, cka_warmup_steps=10)
    assert "cka" not in objective.terms(model, batch, forward, step=0)
    terms = objective.terms(model, batch, forward, step=5)
    torch.testing.assert_close(terms["cka"], 0.2 * linear_cka(forward.z_s, forward.z_r))
    biased = weights_only(cka_weight=1.0, debiased_cka=False).terms(model, batch, forward, 0)
    torch.testing.assert_close(biased["cka"], linear_cka(forward.z_s, forward.z_r, debiased=False))


def test_reconstruction_term_is_the_weighted_l1_of_the_decoder(setup):
    model, batch, forward = setup
    terms = weights_only(reconstruction_weight=2.0).terms(model, batch, forward, step=0)
    expected = 2.0 * (model.decode(forward.z_s, forward.z_r) - batch["x"]).abs().mean()
    torch.testing.assert_close(terms["reconstruction"], expected)


@pytest.mark.parametrize("mode", ["input", "feature"])
def test_cfa_term_is_the_mean_task_loss_of_the_counterfactual_batch(setup, mode):
    model, batch, forward = setup
    objective = weights_only(cfa_weight=0.5, cfa_start_step=3, cfa_mode=mode)
    assert "cfa" not in objective.terms(model, batch, forward, 2, task_losses_fn)
    terms = objective.terms(
        model, batch, forward, 3, task_losses_fn, torch.Generator().manual_seed(7)
    )
    replay = torch.Generator().manual_seed(7)
    torch.rand((), generator=replay)
    permutation = derangement(8, replay)
    predictions = counterfactual_predictions(
        model, forward.shared, forward.z_s, forward.z_r, permutation, mode
    )
    losses = task_losses_fn(predictions, batch)
    torch.testing.assert_close(terms["cfa"], 0.5 * (losses["a"] + losses["b"]) / 2)


@pytest.mark.parametrize("mode", ["input", "feature"])
def test_terms_and_their_gradients_do_not_depend_on_the_head_layout(setup, mode):
    """Stacked heads (one LinearHeads) and separate heads with the same weights give the same
    CKA, reconstruction and CFA terms, and the same parameter gradients."""
    separate = setup[0].double()
    stacked = copy.deepcopy(separate)
    stacked.heads = LinearHeads.from_linear(separate.heads)
    batch = {key: value.double() for key, value in setup[1].items()}
    objective = weights_only(
        cka_weight=0.3, cfa_weight=0.5, reconstruction_weight=1.0, cfa_mode=mode
    )
    results = []
    for model in (separate, stacked):
        forward = model(batch["x"])
        terms = objective.terms(
            model, batch, forward, 0, task_losses_fn, torch.Generator().manual_seed(5)
        )
        sum(terms.values()).backward()
        results.append(
            (terms, {k: p.grad for k, p in model.named_parameters() if "heads" not in k})
        )
    (terms_separate, grads_separate), (terms_stacked, grads_stacked) = results
    assert set(terms_stacked) == set(terms_separate) == {"cka", "reconstruction", "cfa"}
    for name, value in terms_separate.items():
        torch.testing.assert_close(terms_stacked[name], value, rtol=1e-12, atol=1e-14)
    for name, grad in grads_separate.items():
        torch.testing.assert_close(grads_stacked[name], grad, rtol=1e-10, atol=1e-12)


def test_cfa_is_applied_with_its_probability(setup):
    """Over 400 steps the frequency is within 4 binomial standard errors of p = 0.3."""
    model, batch, forward = setup
    objective = weights_only(cfa_weight=1.0, cfa_probability=0.3, cfa_mode="feature")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        hits = sum(
            "cfa" in objective.terms(model, batch, forward, 0, task_losses_fn, generator)
            for _ in range(400)
        )
    assert abs(hits / 400 - 0.3) <= 4 * (0.3 * 0.7 / 400) ** 0.5
    never = weights_only(cfa_weight=1.0, cfa_probability=0.0)
    assert never.terms(model, batch, forward, 0, task_losses_fn) == {}


def test_bad_settings_name_the_parameter(setup):
    model, batch, forward = setup
    with pytest.raises(InvalidParameterError, match="cka_weight: expected a finite number >= 0"):
        CoreMTLObjective(cka_weight=-1)
    with pytest.raises(InvalidParameterError, match="cfa_probability: expected a probability"):
        CoreMTLObjective(cfa_probability=1.5)
    with pytest.raises(InvalidParameterError, match="cfa_mode: expected one of"):
        CoreMTLObjective(cfa_mode="pixel")
    with pytest.raises(InvalidParameterError, match="cka_warmup_steps: expected an integer >= 0"):
        CoreMTLObjective(cka_warmup_steps=2.5)
    with pytest.raises(InvalidParameterError, match="task_losses_fn: the CFA term needs"):
        weights_only(cfa_weight=1.0).terms(model, batch, forward, 0)


def test_the_default_objective_is_the_method(setup):
    """``CoreMTLObjective()`` carries the library defaults (nonzero weights, the paper's CFA) and,
    once the warm-up is over, produces all three terms."""
    model, batch, forward = setup
    objective = CoreMTLObjective()
    assert (objective.cka_weight, objective.cka_warmup_steps) == (
        defaults.CKA_WEIGHT,
        defaults.CKA_WARMUP_STEPS,
    )
    assert (objective.cfa_weight, objective.cfa_probability) == (
        defaults.CFA_WEIGHT,
        defaults.CFA_PROBABILITY,
    )
    assert objective.reconstruction_weight == defaults.RECONSTRUCTION_WEIGHT > 0
    assert objective.cfa_mode == "input" and objective.debiased_cka
    assert min(objective.cka_weight, objective.cfa_weight) > 0
    generator = torch.Generator().manual_seed(0)
    produced = set()
    for _ in range(20):
        step = defaults.CKA_WARMUP_STEPS
        produced |= set(objective.terms(model, batch, forward, step, task_losses_fn, generator))
    assert produced == {"cka", "cfa", "reconstruction"}


def _streams_with_cka(sign: float) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Leaf streams of 8 samples whose debiased CKA has the given sign (first seed that has it;
    the estimate of independent draws is negative about half the time)."""
    for seed in range(100):
        generator = torch.Generator().manual_seed(seed)
        z_s = torch.randn(8, 3, generator=generator)
        z_r = torch.randn(8, 3, generator=generator)
        if sign > 0:
            z_r = z_r + z_s
        value = float(linear_cka(z_s, z_r, debiased=True))
        if value * sign > 0:
            return z_s.requires_grad_(), z_r.requires_grad_(), value
    raise AssertionError("no batch with that sign of the debiased CKA")


def test_cka_penalty_is_the_positive_part_of_a_negative_estimate():
    """A negative debiased estimate is batch noise: zero penalty (relu) and zero gradient, while
    the term's value (what is logged) stays the weighted raw estimate."""
    z_s, z_r, value = _streams_with_cka(-1.0)
    assert value < 0
    estimate = linear_cka(z_s, z_r, debiased=True)
    assert float(torch.relu(estimate.detach())) == 0.0
    forward = Forward(predictions={}, shared=z_s, z_s=z_s, z_r=z_r)
    term = weights_only(cka_weight=0.5).terms(None, {}, forward, 0)["cka"]
    assert float(term.detach()) == pytest.approx(0.5 * value, rel=1e-6)
    gradients = torch.autograd.grad(term, (z_s, z_r))
    assert all(float(g.abs().max()) == 0.0 for g in gradients)
    penalty = cka_penalty(estimate)
    assert float(penalty.detach()) == value


def test_cka_penalty_has_the_cka_gradient_while_the_estimate_is_positive():
    z_s, z_r, value = _streams_with_cka(1.0)
    forward = Forward(predictions={}, shared=z_s, z_s=z_s, z_r=z_r)
    term = weights_only(cka_weight=0.5).terms(None, {}, forward, 0)["cka"]
    assert float(term.detach()) == pytest.approx(0.5 * value, rel=1e-6)
    gradients = torch.autograd.grad(term, (z_s, z_r))
    expected = torch.autograd.grad(0.5 * linear_cka(z_s, z_r, debiased=True), (z_s, z_r))
    for gradient, reference in zip(gradients, expected, strict=True):
        assert float(reference.abs().max()) > 0
        torch.testing.assert_close(gradient, reference, rtol=1e-6, atol=1e-7)
