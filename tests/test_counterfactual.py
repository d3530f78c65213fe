"""Counterfactual residual swapping: derangements, frozen batch norm, both CFA variants."""

from __future__ import annotations

import itertools

import pytest
import torch
from scipy import stats
from torch import nn

from coremtl.counterfactual import (
    counterfactual_predictions,
    derangement,
    frozen_batchnorm,
)
from coremtl.grounding import MLPDecoder
from coremtl.representation import mlp_dual_stream
from scm.validation import InvalidParameterError


def bn_model() -> nn.Module:
    torch.manual_seed(0)
    model = mlp_dual_stream(
        6,
        ["a", "b"],
        hidden=(16, 16),
        semantic_dim=3,
        residual_dim=3,
        decoder=MLPDecoder(3, 3, 6, (8,)),
        batch_norm=True,
    )
    model.encoder.append(nn.Dropout(0.5))
    return model.train()


@pytest.mark.parametrize("n", [2, 3, 7, 64])
def test_derangement_is_a_permutation_without_fixed_points(n):
    generator = torch.Generator().manual_seed(n)
    for _ in range(50):
        permutation = derangement(n, generator)
        assert sorted(permutation.tolist()) == list(range(n))
        assert not (permutation == torch.arange(n)).any()


def test_derangement_is_uniform_over_the_nine_derangements_of_four():
    """Chi-square goodness of fit against the uniform law on D_4 = 9 derangements."""
    generator = torch.Generator().manual_seed(0)
    all_derangements = [
        p for p in itertools.permutations(range(4)) if all(p[i] != i for i in range(4))
    ]
    counts = dict.fromkeys(all_derangements, 0)
    draws = 1800
    for _ in range(draws):
        counts[tuple(derangement(4, generator).tolist())] += 1
    assert len(counts) == 9
    assert stats.chisquare(list(counts.values())).pvalue > 1e-3


def test_derangement_is_reproducible_from_the_generator():
    first = derangement(10, torch.Generator().manual_seed(5))
    assert torch.equal(first, derangement(10, torch.Generator().manual_seed(5)))


def test_frozen_batchnorm_keeps_running_statistics_and_other_modes():
    model = bn_model()
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)]
    dropout = next(m for m in model.modules() if isinstance(m, nn.Dropout))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with frozen_batchnorm(model):
        assert all(not m.training for m in norms) and dropout.training
        model(torch.randn(8, 6))
    assert all(m.training for m in norms)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


@pytest.mark.parametrize("mode", ["input", "feature"])
def test_counterfactual_pass_leaves_batchnorm_state_bit_identical(mode):
    model = bn_model()
    forward = model(torch.randn(8, 6))
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    permutation = derangement(8, torch.Generator().manual_seed(1))
    predictions = counterfactual_predictions(
        model, forward.shared, forward.z_s, forward.z_r, permutation, mode
    )
    sum(p.sum() for p in predictions.values()).backward()
    for key, value in model.named_buffers():
        assert torch.equal(value, buffers[key]), key
    assert all(m.training for m in model.modules())


def test_input_counterfactual_reencodes_the_decoded_swap_without_gradient_to_the_decoder():
    model = bn_model()
    model.encoder[-1].eval()
    forward = model(torch.randn(8, 6))
    permutation = derangement(8, torch.Generator().manual_seed(2))
    predictions = counterfactual_predictions(
        model, forward.shared, forward.z_s, forward.z_r, permutation, "input"
    )
    with frozen_batchnorm(model), torch.no_grad():
        decoded = model.decode(forward.z_s, forward.z_r[permutation])
        expected = model.predict(model.encode(decoded)[0])
    torch.testing.assert_close(predictions["a"], expected["a"])
    sum(p.sum() for p in predictions.values()).backward()
    assert all(p.grad is None for p in model.decoder.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())


def test_feature_counterfactual_equals_the_heads_on_the_edited_semantic_stream():
    """z_s' = z_s + W_s W_r^+ (z_r(pi) - z_r): zero change when W_s W_r^+ = 0."""
    torch.manual_seed(3)
    model = mlp_dual_stream(5, ["a"], hidden=(), semantic_dim=2, residual_dim=2).double()
    x = torch.randn(6, 5, dtype=torch.float64)
    forward = model(x)
    permutation = derangement(6, torch.Generator().manual_seed(3))
    predictions = counterfactual_predictions(
        model, forward.shared, forward.z_s, forward.z_r, permutation, "feature"
    )
    weight = model.split.projection.weight
    leak = weight[:2] @ torch.linalg.pinv(weight[2:])
    z_s_cf = forward.z_s + (forward.z_r[permutation] - forward.z_r) @ leak.T
    torch.testing.assert_close(predictions["a"], model.heads["a"](z_s_cf))
    with torch.no_grad():
        residual_rows = weight[2:].clone()
        semantic_rows = weight[:2] - weight[:2] @ torch.linalg.pinv(residual_rows) @ residual_rows
        weight[:2] = semantic_rows
    forward = model(x)
    predictions = counterfactual_predictions(
        model, forward.shared, forward.z_s, forward.z_r, permutation, "feature"
    )
    torch.testing.assert_close(predictions["a"], forward.predictions["a"])


class PlainSplit(nn.Module):
    """A split that can only compute both streams (no ``semantic``)."""

    def __init__(self, split: nn.Module):
        super().__init__()
        self.inner = split

    def forward(self, features):
        return self.inner(features)

    def substitute_residual(self, features, z_r, current=None):
        return self.inner.substitute_residual(features, z_r, current)


class PlainModel(nn.Module):
    """The model's interface without ``encode_semantic``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.inner = model
        self.split = PlainSplit(model.split)

    def encode(self, x):
        return self.inner.encode(x)

    def decode(self, z_s, z_r):
        return self.inner.decode(z_s, z_r)

    def predict(self, z_s):
        return self.inner.predict(z_s)


@pytest.mark.parametrize("mode", ["input", "feature"])
def test_counterfactuals_need_only_the_two_stream_interface(mode):
    """The semantic-only shortcuts give the predictions of the full encode / split (dropout in
    the encoder draws the same mask from the same seed)."""
    model = bn_model().double()
    plain = PlainModel(model)
    forward = model(torch.randn(8, 6, dtype=torch.float64))
    permutation = derangement(8, torch.Generator().manual_seed(4))
    torch.manual_seed(9)
    fast = counterfactual_predictions(
        model, forward.shared, forward.z_s, forward.z_r, permutation, mode
    )
    torch.manual_seed(9)
    reference = counterfactual_predictions(
        plain, forward.shared, forward.z_s, forward.z_r, permutation, mode
    )
    for name in ("a", "b"):
        torch.testing.assert_close(fast[name], reference[name])


def test_bad_inputs_name_the_parameter():
    with pytest.raises(InvalidParameterError, match="n: a derangement needs at least 2"):
        derangement(1)
    model = bn_model()
    forward = model(torch.randn(4, 6))
    with pytest.raises(InvalidParameterError, match="cfa_mode: expected one of"):
        counterfactual_predictions(
            model, forward.shared, forward.z_s, forward.z_r, torch.tensor([1, 0, 3, 2]), "pixel"
        )


@pytest.mark.parametrize(("mode", "encoder_trained"), [("input", True), ("feature", False)])
def test_only_the_input_level_cfa_gives_the_encoder_a_gradient(mode, encoder_trained):
    """Input-level CFA re-encodes the decoded counterfactual, so its loss reaches the encoder;
    feature-level CFA builds the edited features under ``no_grad`` (the split and heads learn,
    the encoder does not)."""
    model = bn_model()
    x = torch.randn(8, 6, generator=torch.Generator().manual_seed(1))
    forward = model(x)
    permutation = derangement(8, torch.Generator().manual_seed(2))
    predictions = counterfactual_predictions(
        model, forward.shared, forward.z_s, forward.z_r, permutation, mode
    )
    loss = sum(prediction.pow(2).mean() for prediction in predictions.values())
    encoder = list(model.encoder.parameters())
    gradients = torch.autograd.grad(
        loss, encoder + list(model.split.parameters()), allow_unused=True
    )
    encoder_gradients = gradients[: len(encoder)]
    split_gradients = gradients[len(encoder) :]
    reached = any(g is not None and float(g.abs().sum()) > 0 for g in encoder_gradients)
    assert reached == encoder_trained
    assert all(g is not None and float(g.abs().sum()) > 0 for g in split_gradients)
