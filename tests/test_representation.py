"""The dual-stream model: heads read Z_s only, the split and its residual substitution."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from coremtl.forward import Forward
from coremtl.grounding import MLPDecoder
from coremtl.representation import (
    DualStreamModel,
    LinearHeads,
    StackedPredictions,
    StreamSplit,
    mlp_dual_stream,
)
from scm.validation import InvalidParameterError


def vector_model(decoder: bool = False) -> DualStreamModel:
    torch.manual_seed(0)
    return mlp_dual_stream(
        6,
        ["a", "b"],
        hidden=(16,),
        semantic_dim=3,
        residual_dim=4,
        decoder=MLPDecoder(3, 4, 6, (8,)) if decoder else None,
    )


def map_model() -> DualStreamModel:
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
    heads = {"seg": nn.Conv2d(4, 5, 1), "depth": nn.Conv2d(4, 1, 1)}
    return DualStreamModel(encoder, StreamSplit(8, 4, 2, maps=True), heads)


def test_forward_returns_the_encoder_output_and_both_streams():
    model = vector_model()
    x = torch.randn(5, 6)
    forward = model(x)
    assert isinstance(forward, Forward)
    torch.testing.assert_close(forward.shared, model.encoder(x))
    z_s, z_r = model.encode(x)
    torch.testing.assert_close(forward.z_s, z_s)
    torch.testing.assert_close(forward.z_r, z_r)
    assert z_s.shape == (5, 3) and z_r.shape == (5, 4)
    assert set(forward.predictions) == {"a", "b"}


@pytest.mark.parametrize("build", [vector_model, map_model], ids=["vectors", "maps"])
def test_heads_never_see_the_residual_stream(build):
    """Perturbing Z_r (through the split's residual rows) leaves every prediction unchanged."""
    model = build()
    x = torch.randn(4, 6) if build is vector_model else torch.randn(2, 3, 5, 5)
    before = model(x)
    with torch.no_grad():
        model.split.projection.weight[model.split.semantic_dim :] += 5.0
        model.split.projection.bias[model.split.semantic_dim :] -= 3.0
    after = model(x)
    assert not torch.allclose(before.z_r, after.z_r)
    for name in before.predictions:
        assert torch.equal(before.predictions[name], after.predictions[name])
    grads = torch.autograd.grad(
        sum(p.sum() for p in after.predictions.values()), after.z_r, allow_unused=True
    )
    assert grads[0] is None


def test_heads_receive_the_semantic_stream_and_nothing_else():
    model = vector_model()
    seen = []
    model.heads["a"].register_forward_hook(lambda module, inputs, output: seen.append(inputs))
    forward = model(torch.randn(3, 6))
    assert len(seen[0]) == 1 and seen[0][0] is forward.z_s


@pytest.mark.parametrize("maps", [False, True])
def test_substitute_residual_sets_the_residual_stream_and_is_minimal(maps):
    torch.manual_seed(1)
    split = StreamSplit(8, 3, 2, maps=maps).double()
    shape = (4, 8, 3, 3) if maps else (4, 8)
    features = torch.randn(shape, dtype=torch.float64)
    target = torch.randn((4, 2, 3, 3) if maps else (4, 2), dtype=torch.float64)
    edited = split.substitute_residual(features, target)
    torch.testing.assert_close(split(edited)[1], target)
    change = (edited - features).movedim(1, -1) if maps else edited - features
    residual_weight = split.projection.weight.flatten(1)[3:]
    row_space = torch.linalg.pinv(residual_weight) @ residual_weight
    torch.testing.assert_close(change @ row_space.T, change)


def test_decode_needs_a_decoder_and_returns_the_input_shape():
    model = vector_model(decoder=True)
    z_s, z_r = model.encode(torch.randn(3, 6))
    assert model.decode(z_s, z_r).shape == (3, 6)
    with pytest.raises(InvalidParameterError, match="decoder: this DualStreamModel"):
        vector_model().decode(z_s, z_r)


def test_shared_parameters_are_encoder_and_split():
    model = vector_model()
    shared = {id(p) for p in model.shared_parameters()}
    assert shared == {id(p) for p in [*model.encoder.parameters(), *model.split.parameters()]}
    assert not shared & {id(p) for p in model.heads.parameters()}


def test_bad_construction_names_the_parameter():
    with pytest.raises(InvalidParameterError, match="semantic_dim: expected a positive integer"):
        StreamSplit(4, 0, 2)
    with pytest.raises(InvalidParameterError, match="heads: expected at least one task head"):
        DualStreamModel(nn.Identity(), StreamSplit(4, 2, 2), {})


def separate_and_stacked_heads(dtype=torch.float64) -> tuple[DualStreamModel, DualStreamModel]:
    """Two models with equal encoder, split and head weights: K linear heads, and LinearHeads."""
    torch.manual_seed(4)
    separate = mlp_dual_stream(
        6, ["a", "b", "c"], hidden=(16,), semantic_dim=3, residual_dim=4, head_outputs=2
    ).to(dtype)
    stacked = DualStreamModel(
        copy.deepcopy(separate.encoder),
        copy.deepcopy(separate.split),
        LinearHeads.from_linear(separate.heads),
    )
    return separate, stacked


def test_linear_heads_equal_separate_heads_with_the_same_weights_gradients_included():
    separate, stacked = separate_and_stacked_heads()
    x = torch.randn(5, 6, dtype=torch.float64)
    weights = {"a": 0.3, "b": -1.2, "c": 2.0}
    outputs = []
    for model in (separate, stacked):
        forward = model(x)
        loss = sum(weights[t] * forward.predictions[t].square().sum() for t in weights)
        loss.backward()
        outputs.append(forward.predictions)
    assert stacked.task_names == separate.task_names == ["a", "b", "c"]
    for name in weights:
        assert outputs[1][name].shape == outputs[0][name].shape == (5, 2)
        torch.testing.assert_close(outputs[1][name], outputs[0][name], rtol=1e-12, atol=1e-14)
    for part in ("encoder", "split"):
        for p, q in zip(
            getattr(separate, part).parameters(), getattr(stacked, part).parameters(), strict=True
        ):
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(
        stacked.heads.linear.weight.grad,
        torch.cat([separate.heads[t].weight.grad for t in weights]),
        rtol=1e-12,
        atol=1e-14,
    )
    torch.testing.assert_close(
        stacked.heads.linear.bias.grad,
        torch.cat([separate.heads[t].bias.grad for t in weights]),
        rtol=1e-12,
        atol=1e-14,
    )


def test_stacked_predictions_are_the_column_blocks_of_one_output():
    heads = LinearHeads(4, {"seg": 3, "depth": 1, "edge": 2})
    z_s = torch.randn(7, 4)
    predictions = heads(z_s)
    assert isinstance(predictions, StackedPredictions) and isinstance(predictions, dict)
    assert predictions.stacked.shape == (7, 6)
    torch.testing.assert_close(
        torch.cat([predictions[t] for t in ("seg", "depth", "edge")], dim=1), predictions.stacked
    )
    storage = predictions.stacked.untyped_storage().data_ptr()
    for name, prediction in predictions.items():
        assert prediction.untyped_storage().data_ptr() == storage, name
    torch.testing.assert_close(predictions["depth"], heads.linear(z_s)[:, 3:4])


def test_linear_heads_never_see_the_residual_stream():
    """Perturbing Z_r leaves every prediction of the stacked heads bit-identical."""
    torch.manual_seed(0)
    model = mlp_dual_stream(
        6, ["a", "b"], hidden=(16,), semantic_dim=3, residual_dim=4, fused_heads=True
    )
    assert isinstance(model.heads, LinearHeads)
    x = torch.randn(4, 6)
    before = model(x)
    with torch.no_grad():
        model.split.projection.weight[model.split.semantic_dim :] += 5.0
        model.split.projection.bias[model.split.semantic_dim :] -= 3.0
    after = model(x)
    assert not torch.allclose(before.z_r, after.z_r)
    assert torch.equal(before.predictions.stacked, after.predictions.stacked)
    for name in before.predictions:
        assert torch.equal(before.predictions[name], after.predictions[name])
    (grad,) = torch.autograd.grad(after.predictions.stacked.sum(), after.z_r, allow_unused=True)
    assert grad is None


@pytest.mark.parametrize("build", [vector_model, map_model], ids=["vectors", "maps"])
def test_encode_semantic_is_the_semantic_stream_of_encode(build):
    model = build().double()
    x = torch.randn(4, 6) if build is vector_model else torch.randn(2, 3, 5, 5)
    x = x.double()
    torch.testing.assert_close(model.encode_semantic(x), model.encode(x)[0])
    torch.testing.assert_close(model.split.semantic(model.encoder(x)), model.encode(x)[0])


@pytest.mark.parametrize("maps", [False, True])
def test_substitute_residual_with_the_current_stream_given_is_the_same_edit(maps):
    torch.manual_seed(2)
    split = StreamSplit(8, 3, 2, maps=maps).double()
    features = torch.randn((4, 8, 3, 3) if maps else (4, 8), dtype=torch.float64)
    target = torch.randn((4, 2, 3, 3) if maps else (4, 2), dtype=torch.float64)
    _, current = split(features)
    torch.testing.assert_close(
        split.substitute_residual(features, target, current=current),
        split.substitute_residual(features, target),
    )


def test_substitute_residual_uses_the_pseudo_inverse_when_the_residual_rows_are_dependent():
    """With W_r of rank 1 (two equal rows) the edit is the minimal-norm least-squares change."""
    torch.manual_seed(3)
    split = StreamSplit(5, 2, 2).double()
    with torch.no_grad():
        split.projection.weight[3] = split.projection.weight[2]
    residual_weight = split.projection.weight[2:]
    features = torch.randn(6, 5, dtype=torch.float64)
    target = torch.randn(6, 2, dtype=torch.float64)
    edited = split.substitute_residual(features, target)
    _, current = split(features)
    expected = features + (target - current) @ torch.linalg.pinv(residual_weight).T
    torch.testing.assert_close(edited, expected)
    assert torch.isfinite(edited).all()


def test_bad_linear_heads_name_the_parameter():
    with pytest.raises(InvalidParameterError, match="outputs: expected at least one task"):
        LinearHeads(4, {})
    with pytest.raises(InvalidParameterError, match=r"outputs\['a'\]: expected a positive"):
        LinearHeads(4, {"a": 0})
    with pytest.raises(InvalidParameterError, match="in_features: expected a positive"):
        LinearHeads(0, {"a": 1})
    with pytest.raises(InvalidParameterError, match="one common input width"):
        LinearHeads.from_linear({"a": nn.Linear(3, 1), "b": nn.Linear(4, 1)})
    with pytest.raises(InvalidParameterError, match=r"mapping of nn\.Linear heads"):
        LinearHeads.from_linear({"a": nn.Conv2d(3, 1, 1)})
    with pytest.raises(InvalidParameterError, match=r"z_s: LinearHeads expected vectors"):
        LinearHeads(4, {"a": 1})(torch.randn(2, 4, 3, 3))
