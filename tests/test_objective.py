"""CoreMTLObjective: which terms are active when, and what each one equals."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from coremtl.cka import linear_cka
from coremtl.counterfactual import counterfactual_predictions, derangement
from coremtl.grounding import MLPDecoder
from coremtl.objective import CoreMTLObjective
from coremtl.representation import LinearHeads, mlp_dual_stream
from scm.validation import InvalidParameterError


def task_losses_fn(predictions, batch):
    return {
        name: F.mse_loss(predictions[name][:, 0], batch["y"][:, i])
        for i, name in enumerate(("a", "b"))
    }


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
    assert CoreMTLObjective().terms(model, batch, forward, step=10) == {}


@pytest.mark.parametrize(("step", "fraction"), [(0, 0.0), (5, 0.5), (10, 1.0), (50, 1.0)])
def test_cka_weight_ramps_linearly_during_warmup(step, fraction):
    objective = CoreMTLObjective(cka_weight=0.4, cka_warmup_steps=10)
    assert objective.cka_weight_at(step) == pytest.approx(0.4 * fraction)


def test_cka_term_is_the_weighted_debiased_cka_of_the_streams(setup):
    model, batch, forward = setup
    objective = CoreMTLObjective(cka_weight=0.4, cka_warmup_steps=10)
    assert "cka" not in objective.terms(model, batch, forward, step=0)
    terms = objective.terms(model, batch, forward, step=5)
    torch.testing.assert_close(terms["cka"], 0.2 * linear_cka(forward.z_s, forward.z_r))
    biased = CoreMTLObjective(cka_weight=1.0, debiased_cka=False).terms(model, batch, forward, 0)
    torch.testing.assert_close(biased["cka"], linear_cka(forward.z_s, forward.z_r, debiased=False))


def test_reconstruction_term_is_the_weighted_l1_of_the_decoder(setup):
    model, batch, forward = setup
    terms = CoreMTLObjective(reconstruction_weight=2.0).terms(model, batch, forward, step=0)
    expected = 2.0 * (model.decode(forward.z_s, forward.z_r) - batch["x"]).abs().mean()
    torch.testing.assert_close(terms["reconstruction"], expected)


@pytest.mark.parametrize("mode", ["input", "feature"])
def test_cfa_term_is_the_mean_task_loss_of_the_counterfactual_batch(setup, mode):
    model, batch, forward = setup
    objective = CoreMTLObjective(cfa_weight=0.5, cfa_start_step=3, cfa_mode=mode)
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
    objective = CoreMTLObjective(
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
    objective = CoreMTLObjective(cfa_weight=1.0, cfa_probability=0.3, cfa_mode="feature")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        hits = sum(
            "cfa" in objective.terms(model, batch, forward, 0, task_losses_fn, generator)
            for _ in range(400)
        )
    assert abs(hits / 400 - 0.3) <= 4 * (0.3 * 0.7 / 400) ** 0.5
    never = CoreMTLObjective(cfa_weight=1.0, cfa_probability=0.0)
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
        CoreMTLObjective(cfa_weight=1.0).terms(model, batch, forward, 0)
