"""The dual-stream model: heads read Z_s only, the split and its residual substitution."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from coremtl.forward import Forward
from coremtl.grounding import MLPDecoder
from coremtl.representation import DualStreamModel, StreamSplit, mlp_dual_stream
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
