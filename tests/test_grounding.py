"""Soft-grounding decoders and the L1 reconstruction loss."""

from __future__ import annotations

import pytest
import torch

from coremtl.grounding import ConvDecoder, MLPDecoder, adaptive_instance_norm, reconstruction_loss
from scm.validation import InvalidParameterError


def test_adain_output_has_the_style_statistics():
    """Per sample and channel: mean = shift and standard deviation = scale (Huang & Belongie)."""
    generator = torch.Generator().manual_seed(0)
    content = 3 * torch.randn(2, 4, 8, 8, generator=generator, dtype=torch.float64) + 1
    scale = torch.rand(2, 4, generator=generator, dtype=torch.float64) + 0.5
    shift = torch.randn(2, 4, generator=generator, dtype=torch.float64)
    out = adaptive_instance_norm(content, scale, shift, eps=0.0)
    torch.testing.assert_close(out.mean((2, 3)), shift)
    torch.testing.assert_close(out.std((2, 3), unbiased=False), scale)


def test_conv_decoder_upsamples_and_takes_style_only_from_pooled_residual():
    torch.manual_seed(0)
    decoder = ConvDecoder(4, 3, out_channels=3, hidden_channels=8, upsampling=2)
    z_s = torch.randn(2, 4, 5, 6)
    z_r = torch.randn(2, 3, 5, 6)
    out = decoder(z_s, z_r)
    assert out.shape == (2, 3, 20, 24)
    shuffled = z_r[:, :, torch.randperm(5)][:, :, :, torch.randperm(6)]
    torch.testing.assert_close(decoder(z_s, shuffled), out)
    torch.testing.assert_close(decoder(z_s, z_r.mean((2, 3))), out)


def test_conv_decoder_output_depends_on_content_layout():
    torch.manual_seed(1)
    decoder = ConvDecoder(4, 3, hidden_channels=8, upsampling=1)
    z_s = torch.randn(1, 4, 6, 6)
    z_r = torch.randn(1, 3)
    assert not torch.allclose(decoder(z_s, z_r), decoder(z_s.flip(-1), z_r))


def test_mlp_decoder_reads_both_streams():
    torch.manual_seed(0)
    decoder = MLPDecoder(2, 3, 5, hidden=(8,))
    z_s, z_r = torch.randn(4, 2, requires_grad=True), torch.randn(4, 3, requires_grad=True)
    out = decoder(z_s, z_r)
    assert out.shape == (4, 5)
    g_s, g_r = torch.autograd.grad(out.sum(), (z_s, z_r))
    assert g_s.abs().sum() > 0 and g_r.abs().sum() > 0


def test_reconstruction_loss_is_mean_absolute_error():
    x = torch.tensor([[1.0, -2.0], [0.5, 0.0]])
    x_hat = torch.tensor([[0.0, 0.0], [0.5, 1.0]])
    assert reconstruction_loss(x_hat, x).item() == pytest.approx((1 + 2 + 0 + 1) / 4)


def test_bad_inputs_name_the_parameter():
    with pytest.raises(InvalidParameterError, match="reconstruction: expected the input's shape"):
        reconstruction_loss(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(InvalidParameterError, match="upsampling: expected a non-negative integer"):
        ConvDecoder(4, 3, upsampling=-1)
    with pytest.raises(InvalidParameterError, match="z_s: expected a map"):
        ConvDecoder(4, 3)(torch.zeros(2, 4), torch.zeros(2, 3))
    with pytest.raises(InvalidParameterError, match="output_dim: expected a positive integer"):
        MLPDecoder(2, 2, 0)
