"""Encoder, pretrained-weight loading, heads and the hard-grounding physics of the vision model."""

from __future__ import annotations

import pytest
import torch
import torchvision

from coremtl.hard_grounding import (
    HardGroundingDecoder,
    achromatic_shading,
    albedo_normal_correlation,
    hard_grounding_terms,
    lambertian_render,
    total_variation,
)
from coremtl.lighting import shade, srgb_to_linear
from experiments.vision.model.encoder import IMAGENET_MEAN, IMAGENET_STD, ResNetEncoder
from experiments.vision.model.weights import load_pretrained
from scm.validation import InvalidParameterError

TASKS = ["segmentation", "depth", "normal"]


@pytest.fixture(scope="module")
def tiny_model(tiny_vision_model):
    return tiny_vision_model(tasks=TASKS).eval()


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_encoder_has_output_stride_eight(arch):
    encoder = ResNetEncoder(arch).eval()
    with torch.no_grad():
        features = encoder(torch.rand(1, 3, 32, 48))
    assert features.shape == (1, encoder.out_channels, 4, 6)
    assert encoder.out_channels == (2048 if arch == "resnet50" else 512)


def test_encoder_normalises_with_imagenet_statistics():
    encoder = ResNetEncoder("resnet18").eval()
    x = torch.rand(2, 3, 16, 16)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        manual = encoder.layer4(
            encoder.layer3(encoder.layer2(encoder.layer1(encoder.stem((x - mean) / std))))
        )
        assert torch.allclose(encoder(x), manual)


def test_predictions_are_full_resolution_and_ignore_the_residual_stream(tiny_model):
    x = torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        forward = tiny_model(x)
        assert forward.predictions["segmentation"].shape == (2, 5, 32, 48)
        assert forward.predictions["depth"].shape == (2, 1, 32, 48)
        assert forward.z_s.shape == (2, 16, 4, 6) and forward.z_r.shape == (2, 8, 4, 6)
        norms = forward.predictions["normal"].norm(dim=1)
        assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)
        again = tiny_model.predict(forward.z_s)
        assert all(torch.equal(again[t], forward.predictions[t]) for t in TASKS)
        shifted = tiny_model.decode(forward.z_s, forward.z_r + 1.0)
        assert not torch.equal(shifted, tiny_model.decode(forward.z_s, forward.z_r))


def test_hard_grounding_reuses_the_normal_task_head(tiny_model):
    assert tiny_model.decoder.normal_head is tiny_model.heads["normal"]


def test_pretrained_weights_load_from_a_file_and_missing_cache_stops(tmp_path, monkeypatch):
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18-test.pth"
    torch.save(reference.state_dict(), path)
    encoder = ResNetEncoder("resnet18")
    assert load_pretrained(encoder, str(path)) == path
    assert torch.equal(encoder.stem[0].weight, reference.conv1.weight)
    assert torch.equal(encoder.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(
        FileNotFoundError, match=r"model\.weights: no ImageNet weights for resnet18"
    ):
        load_pretrained(ResNetEncoder("resnet18"), "auto")
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(reference.state_dict(), tmp_path / "hub" / "checkpoints" / "resnet18-abc.pth")
    assert load_pretrained(ResNetEncoder("resnet18"), "auto").name == "resnet18-abc.pth"
    with pytest.raises(FileNotFoundError, match=r"model\.weights: no such file"):
        load_pretrained(ResNetEncoder("resnet18"), str(tmp_path / "absent.pth"))
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    with pytest.raises(InvalidParameterError, match="is not a torchvision resnet18 state dict"):
        load_pretrained(ResNetEncoder("resnet18"), str(tmp_path / "other.pth"))


def test_render_is_albedo_times_sh_shading():
    generator = torch.Generator().manual_seed(1)
    normals = torch.nn.functional.normalize(torch.randn(2, 3, 4, 5, generator=generator), dim=1)
    albedo = torch.rand(2, 3, 4, 5, generator=generator)
    lighting = torch.randn(2, 3, 9, generator=generator)
    shading, render = lambertian_render(normals, albedo, lighting)
    assert torch.allclose(shading, shade(normals, lighting, channel_dim=1))
    assert torch.allclose(render, albedo * shading)
    assert bool((shading >= 0).all())


def test_priors_vanish_exactly_where_they_should():
    generator = torch.Generator().manual_seed(2)
    constant = torch.full((2, 3, 6, 6), 0.4)
    assert float(total_variation(constant)) == 0.0
    assert float(total_variation(torch.rand(2, 3, 6, 6, generator=generator))) > 0
    grey = torch.rand(2, 1, 6, 6, generator=generator).expand(2, 3, 6, 6)
    assert float(achromatic_shading(grey)) <= torch.finfo(torch.float32).eps
    """the channel mean of three equal float32 values in [0, 1] is exact to one rounding"""
    assert float(achromatic_shading(torch.rand(2, 3, 6, 6, generator=generator))) > 0
    normals = torch.randn(2, 3, 6, 6, generator=generator)
    copied = albedo_normal_correlation(0.5 + 0.1 * normals, normals)
    assert float(copied) >= 1 / 3 - 1e-5
    """albedo channel c an affine copy of normal component c: 3 of the 9 correlations are 1"""
    assert float(albedo_normal_correlation(torch.full((2, 3, 6, 6), 0.5), normals)) == 0.0


def test_grounding_loss_is_zero_for_a_consistent_decomposition():
    generator = torch.Generator().manual_seed(3)
    decoder = HardGroundingDecoder(4, torch.nn.Conv2d(4, 3, 1))
    components = decoder.components(
        torch.randn(2, 4, 2, 3, generator=generator), torch.randn(2, 4, 2, 3, generator=generator)
    )
    image = torch.rand(2, 3, 16, 24, generator=generator)
    components["render_linear"] = srgb_to_linear(image)
    terms = hard_grounding_terms(components, image, 0.0, 0.0, 0.0)
    assert float(terms["render"]) < 1e-6
    assert set(terms) == {"render", "albedo_tv", "achromatic", "albedo_normal_corr"}


@pytest.mark.parametrize("kind", ["ew", "mtan"])
def test_baseline_model_heads_read_full_width_features(kind, tiny_vision_model):
    model = tiny_vision_model(kind, ["segmentation", "depth"], num_classes=7)
    assert model.heads["segmentation"].head[0].convs[0][0].in_channels == 512
    with torch.no_grad():
        forward = model.eval()(torch.rand(2, 3, 16, 16))
    assert forward.z_s is None and forward.predictions["depth"].shape == (2, 1, 16, 16)
    if kind == "mtan":
        masks = [v for k, v in forward.extras.items() if k.startswith("attention/depth/")]
        assert len(masks) == 4 and all(bool(((m > 0) & (m < 1)).all()) for m in masks)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "cannot read"),
        (b"\x80\x02random bytes, not a checkpoint" * 10, "cannot read"),
        ("truncated", "cannot read"),
        ("tensor", "holds a Tensor, expected a state dict"),
    ],
)
def test_a_corrupt_weights_file_is_one_line_naming_it(tmp_path, content, message):
    path = tmp_path / "resnet18-bad.pth"
    if content == "truncated":
        torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
        path.write_bytes(path.read_bytes()[:5000])
    elif content == "tensor":
        torch.save(torch.zeros(3), path)
    else:
        path.write_bytes(content)
    with pytest.raises(InvalidParameterError, match=f"model\\.weights: .*{message}") as error:
        load_pretrained(ResNetEncoder("resnet18"), str(path))
    assert "\n" not in str(error.value) and str(path) in str(error.value)
