"""Hard grounding through the library preset: the Lambertian renderer on any map backbone, its
agreement with the scene renderer, the normal task's head, gradients, CFA, refusals, training."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

import coremtl
from coremtl.hard_grounding import (
    HardGroundingDecoder,
    HardGroundingTerms,
    lambertian_render,
    normal_task,
)
from coremtl.heads import DenseHead
from coremtl.lighting import directional_light_coefficients, linear_to_srgb, srgb_to_linear
from coremtl.objective import CoreMTLObjective
from experiments.vision.scenes import SceneConfig, SceneRenderer, make_environment
from scm.validation import InvalidParameterError

SCENE_TASKS = [coremtl.Task("segmentation", "dense", 5), coremtl.Task("depth", "dense", 1)]
NORMAL = coremtl.Task("normal", "dense", 3)


def conv_backbone(stride: int, channels: int = 8) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, channels, 3, stride=stride, padding=1), nn.BatchNorm2d(channels), nn.ReLU()
    )


def scenes(n: int, size: tuple[int, int] = (16, 16), seed: int = 0, noise: float | None = None):
    renderer = SceneRenderer(SceneConfig(resolution=size, seed=seed))
    environment = make_environment("source", shortcut=0.5)
    if noise is not None:
        environment = dataclasses.replace(environment, noise_std=noise)
    fields = renderer.render(range(n), "train", environment)
    lighting = renderer.appearance(range(n), "train", environment).lighting
    return {key: value.contiguous() for key, value in fields.items()}, lighting


def scene_data(n: int, size: tuple[int, int] = (16, 16)) -> dict:
    fields, _ = scenes(n, size)
    return {
        "x": fields["image"],
        "segmentation": fields["segmentation"],
        "depth": fields["depth"],
        "normal": fields["normal"],
    }


@pytest.mark.parametrize(("height", "width"), [(16, 16), (28, 28), (24, 40)])
@pytest.mark.parametrize("stride", [1, 3, 4, 8])
def test_the_render_and_its_components_have_the_input_size_for_any_size_and_stride(
    height, width, stride
):
    images = torch.rand(3, 3, height, width)
    preset = coremtl.build(
        "core-mtl", conv_backbone(stride), SCENE_TASKS, images, epochs=6, grounding="hard"
    )
    model = preset.model
    forward = model(images)
    parts = model.decoder.components(forward.z_s, forward.z_r)
    assert model.decode(forward.z_s, forward.z_r).shape == (3, 3, height, width)
    for name in ("normal", "albedo", "shading", "render_linear"):
        assert parts[name].shape == (3, 3, height, width), name
    assert parts["lighting"].shape == (3, 3, 9)
    norms = parts["normal"].norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)
    assert bool(((parts["albedo"] > 0) & (parts["albedo"] < 1)).all())


def test_the_render_of_the_true_albedo_normals_and_lighting_is_the_rendered_scene():
    """Noise-free, the two renderers agree to float32 rounding of the sRGB round trip (values in
    [0, 1], so 1e-6 is a few ulps); with the source's sensor noise the mean error is the noise's
    mean absolute value sigma sqrt(2 / pi); the lighting of another sample is far off."""
    fields, lighting = scenes(4, (24, 32), seed=3, noise=0.0)
    surface = (fields["segmentation"] >= 0)[:, None].expand(-1, 3, -1, -1)
    target = srgb_to_linear(fields["image"])
    _, render = lambertian_render(fields["normal"], fields["albedo"], lighting)
    error = (render.clamp(0, 1) - target).abs()[surface]
    assert float(error.max()) < 1e-6
    _, wrong = lambertian_render(fields["normal"], fields["albedo"], lighting.roll(1, 0))
    assert float((wrong.clamp(0, 1) - target).abs()[surface].mean()) > 1e-3
    sigma = 0.01
    fields, lighting = scenes(4, (24, 32), seed=3, noise=sigma)
    _, render = lambertian_render(fields["normal"], fields["albedo"], lighting)
    noisy = (render.clamp(0, 1) - srgb_to_linear(fields["image"])).abs()[surface].mean()
    assert float(noisy) == pytest.approx(sigma * math.sqrt(2 / math.pi), rel=0.1)


def test_the_normals_come_from_the_normal_task_head_whose_prediction_is_reused():
    data = scene_data(6)
    preset = coremtl.build(
        "core-mtl", conv_backbone(2), [*SCENE_TASKS, NORMAL], data["x"], epochs=6, grounding="hard"
    )
    model = preset.model.eval()
    assert model.decoder.normal_head is model.heads["normal"]
    source = preset.term_sources[0].source
    assert isinstance(source, HardGroundingTerms) and source.input_key == "x"
    forward = model(data["x"])
    reused = source.terms(model, data, forward, 0)
    forward.predictions.pop("normal")
    recomputed = source.terms(model, data, forward, 0)
    pieces = ("render", "albedo_tv", "achromatic", "albedo_normal_corr")
    assert set(reused) == {f"grounding/{piece}" for piece in pieces}
    for name in reused:
        assert torch.allclose(reused[name], recomputed[name]), name
    alone = coremtl.build("core-mtl", conv_backbone(2), SCENE_TASKS, data["x"], epochs=6)
    assert not isinstance(alone.model.decoder, HardGroundingDecoder)
    own = coremtl.build(
        "core-mtl", conv_backbone(2), SCENE_TASKS, data["x"], epochs=6, grounding="hard"
    ).model.decoder.normal_head
    assert isinstance(own, DenseHead)
    assert normal_task([*SCENE_TASKS, coremtl.Task("Surface_Normals", "dense", 3)]) == (
        "Surface_Normals"
    )


def test_the_render_loss_trains_the_encoder_the_normal_head_albedo_and_lighting():
    """The light starts uniform (shading independent of the normals), so the normals get their
    gradient once the light has a direction: here one from above and to the right."""
    data = scene_data(6)
    preset = coremtl.build(
        "core-mtl", conv_backbone(2), SCENE_TASKS, data["x"], epochs=6, grounding="hard"
    )
    model = preset.model
    light = directional_light_coefficients(torch.tensor([[0.5, -1.0, -0.5]]), torch.ones(1, 3), 0.5)
    with torch.no_grad():
        model.decoder.lighting.linear.bias.copy_(light.flatten())
    terms = preset.term_sources[0].source.terms(model, data, model(data["x"]), 0)
    sum(terms.values()).backward()
    for name, part in (
        ("encoder", model.encoder),
        ("split", model.split),
        ("normal head", model.decoder.normal_head),
        ("albedo", model.decoder.albedo),
        ("lighting", model.decoder.lighting),
    ):
        gradient = sum(float(p.grad.abs().sum()) for p in part.parameters() if p.grad is not None)
        assert gradient > 0, name
    assert all(p.grad is None for p in model.heads.parameters())


def test_the_counterfactual_keeps_the_normals_and_takes_the_albedo_and_light_of_the_donor():
    data = scene_data(6)
    objective = CoreMTLObjective(cfa_weight=1.0, cfa_probability=1.0)
    preset = coremtl.build(
        "core-mtl",
        conv_backbone(2),
        SCENE_TASKS,
        data["x"],
        epochs=6,
        grounding="hard",
        objective=objective,
    )
    model = preset.model.eval()
    with torch.no_grad():
        z_s, z_r = model.encode(data["x"])
        donor = torch.roll(torch.arange(6), 1)
        own = model.decoder.components(z_s, z_r)
        swapped = model.decoder.components(z_s, z_r[donor])
        counterfactual = model.decode(z_s, z_r[donor])
    assert torch.equal(swapped["normal"], own["normal"])
    assert torch.allclose(swapped["albedo"], own["albedo"][donor])
    assert torch.allclose(swapped["lighting"], own["lighting"][donor])
    rendered = linear_to_srgb(swapped["render_linear"].clamp(0, 1))
    assert torch.equal(counterfactual, rendered)
    independence = preset.term_sources[-1].source
    terms = independence.terms(
        model,
        data,
        model(data["x"]),
        10_000,
        task_losses_fn=lambda p, b: {t: preset.task_losses[t](p[t], b) for t in p},
        generator=torch.Generator().manual_seed(0),
    )
    assert "cfa" in terms and torch.isfinite(terms["cfa"])


def test_what_hard_grounding_cannot_render_is_refused_in_one_line():
    images = torch.rand(4, 3, 16, 16)
    vectors = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 8))
    grey = nn.Sequential(nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.ReLU())
    cases = [
        ((vectors, [coremtl.Task("c", "classification", 2)], images), "produces vectors"),
        ((grey, SCENE_TASKS, torch.rand(4, 1, 16, 16)), "renders RGB images"),
        ((conv_backbone(2), SCENE_TASKS, images * 2 - 1), r"sRGB images with values in \[0, 1\]"),
        ((conv_backbone(2), [*SCENE_TASKS, coremtl.Task("normal", "dense", 2)], images), "3 out"),
        (
            (conv_backbone(2), [NORMAL, coremtl.Task("normals", "dense", 3)], images),
            "several surface-normal tasks",
        ),
    ]
    for (backbone, tasks, example), message in cases:
        with pytest.raises(InvalidParameterError, match=message):
            coremtl.build("core-mtl", backbone, tasks, example, epochs=6, grounding="hard")
    with pytest.raises(InvalidParameterError, match="grounding: expected one of"):
        coremtl.build("core-mtl", conv_backbone(2), SCENE_TASKS, images, epochs=6, grounding="x")
    with pytest.raises(InvalidParameterError, match="tv_weight: expected a finite number"):
        HardGroundingTerms(tv_weight=-1.0)
    soft = coremtl.build("core-mtl", conv_backbone(2), SCENE_TASKS, images, epochs=6).model
    with pytest.raises(InvalidParameterError, match="decoder is a HardGroundingDecoder"):
        HardGroundingTerms().terms(soft, {"x": images}, soft(images), 0)


def test_training_with_hard_grounding_on_rendered_scenes_lowers_the_render_and_task_losses():
    data = scene_data(24)
    backbone = nn.Sequential(
        *conv_backbone(2), nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU()
    )
    result = coremtl.train(
        "core-mtl",
        backbone,
        SCENE_TASKS,
        data,
        epochs=4,
        batch_size=8,
        learning_rate=5e-3,
        grounding="hard",
    )
    first, last = result.history[0]["train"], result.history[-1]["train"]
    assert last["term/grounding/render"] < first["term/grounding/render"]
    first_tasks = next(h["train"] for h in result.history if "loss/depth" in h["train"])
    for task in ("segmentation", "depth"):
        assert last[f"loss/{task}"] < first_tasks[f"loss/{task}"], task
    assert "term/cfa" in last and math.isfinite(last["term/cfa"])
