"""Probes of what the streams and the hard-grounding decoder hold: the generic measurements of
coremtl.intrinsic_probes and the rendered scenes' truth of the shortcut suite's hard probes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import coremtl
from coremtl.intrinsic_probes import (
    at_resolution,
    decomposition,
    decomposition_errors,
    mean_angle_degrees,
    pooled_streams,
    procrustes_aligned,
    ridge_r2,
    scale_invariant_mse,
)
from coremtl.lighting import directional_light_coefficients, shade
from experiments.synthetic.shortcuts.benchmarks import Law
from experiments.synthetic.shortcuts.hard_probes import hard_probes
from experiments.synthetic.shortcuts.scenes import FLOOR_SLOT, SceneBenchmark, SceneSetup
from experiments.vision.scenes.environments import SOURCE
from scm.validation import InvalidParameterError

TASKS = [coremtl.Task("segmentation", "dense", 5), coremtl.Task("depth", "dense", 1)]
SCENES = SceneBenchmark(SceneSetup(resolution=(16, 16)))


def probe_split(seed: int, split: str, n: int) -> dict[str, torch.Tensor]:
    """Shortcut-free scenes with their truth, as the suite's probes read them."""
    return SCENES.draw(seed, split, n, Law("target"))


def backbone() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU())


def model_on(images: torch.Tensor, grounding: str) -> nn.Module:
    return coremtl.build("core-mtl", backbone(), TASKS, images, epochs=6, grounding=grounding).model


def test_the_ridge_probe_scores_linear_information_near_one_and_noise_near_zero():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(400, 6, generator=generator, dtype=torch.float64)
    targets = features[:, :3] @ torch.randn(3, 2, generator=generator, dtype=torch.float64)
    assert ridge_r2(features[:200], targets[:200], features[200:], targets[200:]) > 0.999
    noise = torch.randn(400, 6, generator=generator, dtype=torch.float64)
    assert ridge_r2(noise[:200], targets[:200], noise[200:], targets[200:]) < 0.1
    with pytest.raises(InvalidParameterError, match="features and targets: expected as many"):
        ridge_r2(features[:200], targets[:100], features[200:], targets[200:])
    with pytest.raises(InvalidParameterError, match="held-out targets do not vary"):
        ridge_r2(features[:200], targets[:200], features[200:], torch.zeros(200, 2))


def test_the_masked_scale_invariant_error_ignores_scale_and_the_pixels_outside_the_mask():
    generator = torch.Generator().manual_seed(1)
    truth = torch.rand(2, 3, 5, 5, generator=generator) + 0.1
    mask = torch.zeros(2, 1, 5, 5, dtype=torch.bool)
    mask[:, :, :2] = True
    corrupted = 2.5 * truth.clone()
    corrupted[:, :, 2:] = torch.rand(2, 3, 3, 5, generator=generator)
    assert torch.allclose(
        scale_invariant_mse(corrupted, truth, mask), torch.zeros(2).double(), atol=1e-12
    )
    assert bool((scale_invariant_mse(corrupted, truth) > 1e-3).all())
    unmasked = scale_invariant_mse(corrupted, truth)
    assert torch.allclose(scale_invariant_mse(corrupted, truth, torch.ones_like(mask)), unmasked)
    empty = torch.zeros_like(mask)
    assert bool(scale_invariant_mse(corrupted, truth, empty).isnan().all())


def test_the_angle_of_orthogonal_normals_is_ninety_degrees():
    x = torch.zeros(1, 3, 2, 2)
    x[:, 0] = 1.0
    z = torch.zeros(1, 3, 2, 2)
    z[:, 2] = 3.0
    everywhere = torch.ones(1, 2, 2, dtype=torch.bool)
    assert mean_angle_degrees(x, z, everywhere) == pytest.approx(90.0)
    assert mean_angle_degrees(z, 2 * z, everywhere) == pytest.approx(0.0, abs=1e-6)


def test_an_orthogonal_map_of_the_normals_is_undone_by_the_alignment():
    generator = torch.Generator().manual_seed(2)
    truth = F.normalize(torch.randn(2, 3, 4, 4, generator=generator), dim=1).double()
    reflection = torch.linalg.qr(torch.randn(3, 3, generator=generator).double())[0]
    reflection = reflection @ torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64))
    mapped = torch.einsum("bihw,ij->bjhw", truth, reflection)
    everywhere = torch.ones(2, 4, 4, dtype=torch.bool)
    assert mean_angle_degrees(mapped, truth, everywhere) > 10.0
    aligned = procrustes_aligned(mapped, truth, everywhere)
    assert mean_angle_degrees(aligned, truth, everywhere) == pytest.approx(0.0, abs=1e-4)


def test_a_map_smooth_at_the_feature_resolution_is_kept_and_a_fine_pattern_is_not():
    constant = torch.rand(2, 3, 1, 1).expand(2, 3, 8, 8)
    assert torch.allclose(at_resolution(constant, (2, 2)), constant)
    checker = (torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2
    fine = checker.float().expand(2, 3, 8, 8)
    assert torch.allclose(at_resolution(fine, (2, 2)), torch.full_like(fine, 0.5))


def test_pooled_streams_are_the_spatial_means_of_the_streams_in_eval_mode():
    images = torch.rand(5, 3, 16, 16)
    model = model_on(images, "soft")
    model.train()
    pooled_s, pooled_r = pooled_streams(model, images, batch_size=2)
    assert model.training
    with torch.no_grad():
        z_s, z_r = model.eval().encode(images)
    assert torch.allclose(pooled_s, z_s.mean(dim=(2, 3)).double(), atol=1e-6)
    assert torch.allclose(pooled_r, z_r.mean(dim=(2, 3)).double(), atol=1e-6)


def test_the_decoded_maps_score_zero_against_themselves_and_the_references_do_not():
    """Under a directional light (the decoder's initial light is uniform, its shading constant)."""
    fields = probe_split(0, "probe_eval", 6)
    model = model_on(fields["x"], "hard")
    light = directional_light_coefficients(torch.tensor([[0.5, -1.0, -0.5]]), torch.ones(1, 3), 0.5)
    with torch.no_grad():
        model.decoder.lighting.linear.bias.copy_(light.flatten())
    truth = decomposition(model, fields["x"])
    regions = {"surface": fields["segmentation"] >= 0}
    errors = decomposition_errors(model, fields["x"], truth, regions)
    for quantity in ("albedo", "shading"):
        assert errors[f"{quantity}/surface/si_mse"] == pytest.approx(0.0, abs=1e-12)
        assert errors[f"{quantity}/surface/si_mse_reference"] > 0
    assert errors["normal/surface/angle"] == pytest.approx(0.0, abs=0.1)
    assert errors["normal/surface/angle_aligned"] == pytest.approx(0.0, abs=0.1)
    assert errors["normal/surface/angle_reference"] > 1.0
    with pytest.raises(InvalidParameterError, match="needs a HardGroundingDecoder"):
        decomposition(model_on(fields["x"], "soft"), fields["x"])


def test_the_probe_splits_truth_agrees_with_the_rendered_maps():
    """The floor's per-pixel albedo is its slot colour times the texture factor ``1 + tau mean
    sin(.)`` in ``[1 - tau, 1 + tau]`` (clipped at 1), and the shading map is ``max(0, Y(N) . L)``
    of the normal map under the lighting."""
    fields = probe_split(1, "probe_fit", 8)
    floor = fields["segmentation"] == FLOOR_SLOT
    tau = SOURCE.texture_strength
    ratio = fields["albedo"] / fields["floor_albedo"][:, :, None, None]
    ratio = ratio.permute(0, 2, 3, 1)[floor]
    assert bool((ratio >= 1 - tau - 1e-5).all()) and bool((ratio <= 1 + tau + 1e-5).all())
    surface = (fields["segmentation"] >= 0)[:, None].expand(-1, 3, -1, -1)
    lighting = fields["lighting"].view(-1, 3, 9)
    shading = shade(fields["normal"], lighting, channel_dim=1)
    assert torch.allclose(shading[surface], fields["shading"][surface], atol=1e-6)


def test_hard_probes_report_streams_for_any_model_and_the_decomposition_for_hard_grounding():
    fit = probe_split(0, "probe_fit", 32)
    held_out = probe_split(0, "probe_eval", 32)
    hard = hard_probes(model_on(fit["x"], "hard"), fit, held_out)
    soft = hard_probes(model_on(fit["x"], "soft"), fit, held_out)
    streams = {
        f"{t}_r2/{s}" for t in ("floor_albedo", "lighting") for s in ("semantic", "residual")
    }
    assert set(soft) == streams
    assert streams < set(hard)
    measures = {
        "albedo": ("si_mse", "si_mse_reference", "si_mse_feature_resolution"),
        "shading": ("si_mse", "si_mse_reference", "si_mse_feature_resolution"),
        "normal": ("angle", "angle_aligned", "angle_reference"),
    }
    for quantity, names in measures.items():
        for region in ("floor", "objects", "surface"):
            for measure in names:
                assert math.isfinite(hard[f"{quantity}/{region}/{measure}"])
