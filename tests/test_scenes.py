"""Rendered scenes: exact geometry, the appearance model, environments, determinism and the layout
on disk."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from sh_reference import reference_sh_basis

from coremtl.lighting import srgb_to_linear
from coremtl_cli.main import main as coremtl_main
from experiments.vision.scenes import (
    RenderedScenes,
    SceneClass,
    SceneConfig,
    SceneRenderer,
    hue_derangement,
    make_environment,
    permuted_environment,
    write_split,
)
from experiments.vision.scenes.appearance import albedo_palette, draw_residuals, hsv_to_rgb
from experiments.vision.scenes.config import SHAPES
from experiments.vision.scenes.geometry import PinholeCamera, cast_rays
from experiments.vision.scenes.layout import Layout
from scm.validation import InvalidParameterError

SIZE = 33
CENTRE = (SIZE // 2) * SIZE + SIZE // 2
HEIGHT = 1.5
PLANE_CLASS = 0
FLOAT64_TOLERANCE = 1e-9
"""Closed-form intersections in float64 on metre-scale scenes: rounding is ~1e-15 relative."""
SRGB_ROUND_TRIP = 1e-6
"""float32 sRGB encode/decode: a few ulps (6e-8) times the decoder's largest slope (~2.4 / 1.055)."""
FLOAT32_ULPS = 4 * torch.finfo(torch.float32).eps
"""Vectorised and scalar float32 ``sin`` / ``pow`` (texture, sRGB) may differ by an ulp or two."""

SMALL = SceneConfig(resolution=(24, 32))
SMALL_CROWDED = SceneConfig(resolution=(24, 32), min_objects=4, max_objects=8)


def layout_of(shape: str, centre, half, yaw: float = 0.0, class_id: int = 1) -> Layout:
    return Layout(
        class_ids=np.array([class_id]),
        shapes=np.array([SHAPES.index(shape)]),
        centres=np.array([centre], dtype=float),
        half_sizes=np.array([half], dtype=float),
        yaws=np.array([yaw]),
    )


def empty_layout() -> Layout:
    return Layout(
        np.zeros(0, np.int64),
        np.zeros(0, np.int64),
        np.zeros((0, 3)),
        np.zeros((0, 3)),
        np.zeros(0),
    )


def cast(layouts, pitch_deg: float, max_depth: float = 100.0):
    camera = PinholeCamera(SIZE, SIZE, 60.0, HEIGHT, pitch_deg)
    hits = cast_rays(layouts, camera, max_depth, PLANE_CLASS, dtype=torch.float64)
    return camera, hits


def on_axis(camera: PinholeCamera, distance: float) -> np.ndarray:
    return camera.origin() + distance * camera.world_from_camera()[:, 2]


@pytest.mark.parametrize("pitch_deg", [0.0, 20.0])
def test_sphere_on_the_optical_axis_has_depth_distance_minus_radius_at_the_centre_pixel(pitch_deg):
    camera = PinholeCamera(SIZE, SIZE, 60.0, HEIGHT, pitch_deg)
    centre = on_axis(camera, 5.0)
    _, hits = cast([layout_of("sphere", centre, (0.7, 0.7, 0.7), class_id=3)], pitch_deg)
    assert hits.depth[0, CENTRE].item() == pytest.approx(5.0 - 0.7, abs=FLOAT64_TOLERANCE)
    assert torch.allclose(
        hits.normal[0, CENTRE],
        torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64),
        atol=FLOAT64_TOLERANCE,
    )
    assert hits.label[0, CENTRE].item() == 3


@pytest.mark.parametrize("yaw", [0.0, 0.3, -0.6])
def test_yawed_box_face_depth_and_normal_on_the_axis(yaw):
    half = (0.8, 0.5, 0.4)
    centre = (0.0, HEIGHT, 4.0)
    _, hits = cast([layout_of("box", centre, half, yaw, class_id=2)], pitch_deg=0.0)
    assert abs(half[2] * math.tan(yaw)) < half[0]
    expected_depth = 4.0 - half[2] / math.cos(yaw)
    assert hits.depth[0, CENTRE].item() == pytest.approx(expected_depth, abs=FLOAT64_TOLERANCE)
    expected_normal = torch.tensor([-math.sin(yaw), 0.0, -math.cos(yaw)], dtype=torch.float64)
    assert torch.allclose(hits.normal[0, CENTRE], expected_normal, atol=FLOAT64_TOLERANCE)
    assert hits.label[0, CENTRE].item() == 2


def test_cylinder_side_on_the_axis_and_its_cap_seen_from_above():
    radius, centre = 0.5, (0.0, HEIGHT, 4.0)
    _, hits = cast([layout_of("cylinder", centre, (radius, 0.6, radius), class_id=4)], 0.0)
    assert hits.depth[0, CENTRE].item() == pytest.approx(4.0 - radius, abs=FLOAT64_TOLERANCE)
    assert torch.allclose(
        hits.normal[0, CENTRE],
        torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64),
        atol=FLOAT64_TOLERANCE,
    )
    camera = PinholeCamera(SIZE, SIZE, 60.0, HEIGHT, 45.0)
    ground_point = on_axis(camera, HEIGHT / math.sin(math.radians(45.0)))
    wide = 0.8
    low = layout_of("cylinder", (ground_point[0], 0.3, ground_point[2]), (wide, 0.3, wide))
    _, hits = cast([low], 45.0)
    assert (HEIGHT - 0.6) / math.tan(math.radians(45.0)) < HEIGHT - 0.6 + 1e-12 < wide + 0.6
    assert hits.depth[0, CENTRE].item() == pytest.approx(
        (HEIGHT - 0.6) / math.sin(math.radians(45.0)), abs=FLOAT64_TOLERANCE
    )
    up = torch.as_tensor(camera.world_from_camera().T @ np.array([0.0, 1.0, 0.0]))
    assert torch.allclose(hits.normal[0, CENTRE], up, atol=FLOAT64_TOLERANCE)


def test_screen_rectangle_culling_changes_no_pixel(monkeypatch):
    from experiments.vision.scenes import geometry

    renderer = SceneRenderer(SceneConfig(resolution=(40, 56), max_objects=8))
    layouts = [renderer.layout(index, "train") for index in range(8)]
    culled = cast_rays(layouts, renderer.camera, 12.0, 0)

    def whole_image(camera, centres, *unused):
        return np.tile([0, camera.width, 0, camera.height], (len(centres), 1))

    monkeypatch.setattr(geometry, "_screen_rectangles", whole_image)
    brute = cast_rays(layouts, renderer.camera, 12.0, 0)
    for field in ("label", "depth", "normal"):
        assert torch.equal(getattr(culled, field), getattr(brute, field)), field
    assert (culled.label > 0).sum() > 100


@pytest.mark.parametrize("pitch_deg", [10.0, 30.0])
def test_ground_depth_and_normal_match_the_plane_formula(pitch_deg):
    camera, hits = cast([empty_layout()], pitch_deg, max_depth=30.0)
    theta = math.radians(pitch_deg)
    rows = (torch.arange(SIZE, dtype=torch.float64) + 0.5 - SIZE / 2) / camera.focal
    denominator = (math.cos(theta) * rows + math.sin(theta)).repeat_interleave(SIZE)
    expected = torch.where(denominator > 0, HEIGHT / denominator, math.inf)
    visible = expected <= 30.0
    assert visible.any() and (~visible).any()
    assert torch.allclose(hits.depth[0, visible], expected[visible], rtol=FLOAT64_TOLERANCE)
    up = torch.tensor([0.0, -math.cos(theta), -math.sin(theta)], dtype=torch.float64)
    assert torch.allclose(hits.normal[0, visible], up.expand(int(visible.sum()), 3))
    assert (hits.label[0, visible] == PLANE_CLASS).all()
    assert (hits.label[0, ~visible] == -1).all() and (hits.depth[0, ~visible] == 0).all()
    assert (hits.normal[0, ~visible] == 0).all()


def test_random_scenes_have_unit_normals_on_surfaces_and_invalid_markers_on_sky():
    batch = SceneRenderer(SMALL).render(range(6), "train", make_environment("source"))
    valid = batch["depth"][:, 0] > 0
    norms = batch["normal"].norm(dim=1)
    assert torch.allclose(norms[valid], torch.ones_like(norms[valid]), atol=1e-5)
    assert (batch["normal"].permute(0, 2, 3, 1)[~valid] == 0).all()
    assert (batch["segmentation"][~valid] == -1).all()
    assert set(batch["segmentation"].unique().tolist()) <= set(range(-1, SMALL.num_classes))
    assert (batch["segmentation"][valid] >= 0).all()
    assert (batch["segmentation"] > 0).any() and (~valid).any()


def test_rendered_shading_equals_the_explicit_sh_polynomial():
    renderer = SceneRenderer(SMALL, dtype=torch.float64)
    environment = make_environment("target", shift=0.7)
    batch = renderer.render([0, 1], "train", environment)
    lighting = renderer.appearance([0, 1], "train", environment).lighting
    x, y, z = batch["normal"].unbind(1)
    basis = reference_sh_basis(x, y, z)
    expected = torch.einsum("bhwj,bcj->bchw", basis, lighting).clamp_min(0)
    valid = (batch["depth"] > 0).expand_as(expected)
    assert torch.allclose(batch["shading"][valid], expected[valid], atol=1e-12)
    assert (batch["shading"][~valid] == 1).all()


def noiseless(name: str, shift: float = 1.0):
    return dataclasses.replace(make_environment(name, shift), noise_std=0.0)


@pytest.mark.parametrize("environment", [noiseless("source"), noiseless("target")])
def test_noiseless_image_is_the_srgb_encoding_of_albedo_times_shading(environment):
    batch = SceneRenderer(SMALL).render(range(4), "train", environment)
    linear = (batch["albedo"] * batch["shading"]).clamp(0, 1)
    assert torch.allclose(srgb_to_linear(batch["image"]), linear, atol=SRGB_ROUND_TRIP)


def test_sensor_noise_has_the_environment_standard_deviation():
    environment = make_environment("target", shift=1.0)
    batch = SceneRenderer(SceneConfig(resolution=(48, 48))).render(range(4), "val", environment)
    linear = batch["albedo"] * batch["shading"]
    residual = srgb_to_linear(batch["image"]).double() - linear.double()
    inside = (linear > 0.2) & (linear < 0.8)
    count = int(inside.sum())
    estimate = residual[inside].std().item()
    standard_error = environment.noise_std / math.sqrt(2 * count)
    assert count > 1000
    assert abs(estimate - environment.noise_std) < 4 * standard_error + SRGB_ROUND_TRIP


def test_residual_shift_changes_appearance_but_no_label_depth_or_normal():
    renderer = SceneRenderer(SMALL)
    indices = range(5)
    source = renderer.render(indices, "train", make_environment("source"))
    for environment in (
        make_environment("target", 0.4),
        make_environment("target", 1.0),
        make_environment("source", shortcut=1.0),
    ):
        other = renderer.render(indices, "train", environment)
        for key in ("segmentation", "depth", "normal"):
            assert torch.equal(source[key], other[key]), key
        assert (source["image"] - other["image"]).abs().mean() > 0.02


def test_target_at_zero_shift_reproduces_the_source_images():
    renderer = SceneRenderer(SMALL)
    source = renderer.render(range(3), "test", make_environment("source"))
    target = renderer.render(range(3), "test", make_environment("target", shift=0.0))
    for key, value in source.items():
        assert torch.equal(value, target[key]), key


def assert_same_sample(batched: dict, alone: dict) -> None:
    for key in ("segmentation", "depth", "normal", "shading"):
        assert torch.equal(batched[key], alone[key]), key
    for key in ("albedo", "image"):
        assert torch.allclose(batched[key], alone[key], rtol=FLOAT32_ULPS, atol=FLOAT32_ULPS), key


def test_sample_is_the_same_whatever_its_batch_and_renderer():
    dataset = RenderedScenes(12, environment="target", shift=0.5, config=SMALL)
    batch = dataset.render([7, 2, 9])
    fresh = RenderedScenes(12, environment="target", shift=0.5, config=SMALL)
    loaded = list(torch.utils.data.DataLoader(fresh, batch_size=4))
    for position, index in enumerate([7, 2, 9]):
        alone = dataset[index]
        assert_same_sample({key: value[position] for key, value in batch.items()}, alone)
        assert_same_sample(
            {key: value[index % 4] for key, value in loaded[index // 4].items()}, alone
        )


def test_sample_is_the_same_in_a_dataloader_worker():
    dataset = RenderedScenes(4, environment="source", config=SMALL)
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=1)
    loaded = list(loader)
    for index in range(4):
        assert_same_sample(
            {key: value[index % 2] for key, value in loaded[index // 2].items()}, dataset[index]
        )


def test_getitems_returns_what_getitem_returns_for_each_index():
    dataset = RenderedScenes(16, environment="target", shift=0.3, config=SMALL_CROWDED)
    indices = [11, 0, 11, 6, 15]
    for index, sample in zip(indices, dataset.__getitems__(indices), strict=True):
        assert_same_sample(sample, dataset[index])


def test_a_loader_with_a_batch_sampler_renders_each_batch_in_one_call(monkeypatch):
    dataset = RenderedScenes(10, config=SMALL)
    calls = []
    render = dataset.renderer.render

    def counting(indices, split, environment):
        calls.append(list(indices))
        return render(indices, split, environment)

    monkeypatch.setattr(dataset.renderer, "render", counting)
    batches = [[3, 1, 4], [9, 0]]
    loaded = list(torch.utils.data.DataLoader(dataset, batch_sampler=batches))
    assert calls == batches
    assert [len(batch["image"]) for batch in loaded] == [3, 2]


def test_sparse_primitive_pixels_agree_with_the_dense_maps():
    renderer = SceneRenderer(SMALL_CROWDED)
    hits = renderer.geometry(range(6), "train")
    objects = hits.object_pixels
    assert objects.numel() == objects.unique().numel() > 50
    assert torch.equal(hits.label.reshape(-1)[objects], hits.object_labels)
    assert torch.equal(hits.normal_planes.reshape(3, -1)[:, objects], hits.object_normals)
    plane = SMALL_CROWDED.plane_class
    is_object = (hits.label.reshape(-1) >= 0) & (hits.label.reshape(-1) != plane)
    assert torch.equal(torch.sort(objects).values, torch.nonzero(is_object).squeeze(1))
    forward = torch.as_tensor(renderer.camera.world_from_camera()[:, 2], dtype=torch.float32)
    origin = torch.as_tensor(renderer.camera.origin(), dtype=torch.float32)
    camera_z = ((hits.object_points - origin[:, None]) * forward[:, None]).sum(0)
    assert torch.allclose(camera_z, hits.depth.reshape(-1)[objects], rtol=1e-5)


def test_a_scene_seen_only_against_the_sky_has_sky_albedo_and_unit_shading():
    config = dataclasses.replace(SMALL, camera_pitch_deg=-60.0)
    environment = noiseless("target", 0.5)
    renderer = SceneRenderer(config)
    batch = renderer.render(range(3), "train", environment)
    assert (batch["segmentation"] == -1).all() and (batch["depth"] == 0).all()
    assert (batch["normal"] == 0).all() and (batch["shading"] == 1).all()
    sky = renderer.appearance(range(3), "train", environment).sky
    assert torch.equal(batch["albedo"], sky[:, :, None, None].expand_as(batch["albedo"]))


def test_benchmark_sources_read_the_same_batches_through_the_trainer_loader_path(tmp_path):
    from experiments.vision.datasets.npy import MultiTaskNpyDataset
    from experiments.vision.render_benchmark import NpyFiles, OneByOne, batches, compare

    n = 5
    rendered = RenderedScenes(n, config=SMALL)
    folder = write_split(tmp_path, "train", n, rendered.environment, SMALL, progress=False)
    pipeline = MultiTaskNpyDataset(tmp_path, "train", ["segmentation", "depth", "normal"], 5)
    sources = [NpyFiles(folder, n), pipeline, rendered, OneByOne(rendered)]
    loaded = [
        list(torch.utils.data.DataLoader(source, batch_sampler=batches(n))) for source in sources
    ]
    reference = loaded[0][0]
    assert len(reference["image"]) == n
    for batches_of_source in loaded[1:]:
        (batch,) = batches_of_source
        assert batch.keys() == reference.keys()
        for key, value in reference.items():
            assert batch[key].shape == value.shape and batch[key].dtype == value.dtype, key
        assert torch.equal(batch["segmentation"], reference["segmentation"])
        assert torch.equal(batch["depth"], reference["depth"])
        assert torch.allclose(batch["image"], reference["image"], atol=FLOAT32_ULPS)
    row = compare(8, 3, repeats=1, device="cpu")
    assert row["n"] == 3 and row["render_over_load"] > 0
    assert all(row[f"{name}_images_per_s"] > 0 for name in ("load", "pipeline", "render"))


def test_seed_and_split_change_the_layout():
    base = RenderedScenes(3, config=SMALL)[0]["segmentation"]
    assert not torch.equal(base, RenderedScenes(3, config=SMALL, seed=1)[0]["segmentation"])
    other_split = RenderedScenes(3, split="val", config=SMALL)[0]["segmentation"]
    assert not torch.equal(base, other_split)


def test_without_texture_the_albedo_is_constant_on_each_class():
    config = dataclasses.replace(SMALL, texture=False)
    batch = SceneRenderer(config).render(range(3), "train", make_environment("target"))
    for b in range(3):
        albedo = batch["albedo"][b].reshape(3, -1)
        labels = batch["segmentation"][b].reshape(-1)
        for label in labels.unique().tolist():
            if label < 0:
                continue
            colours = albedo[:, labels == label]
            assert (colours == colours[:, :1]).all()


def test_full_shortcut_gives_each_class_its_own_hue_in_the_source_only():
    import colorsys

    num_classes = 5
    rng = np.random.default_rng(0)
    draws = [draw_residuals(rng, num_classes + 1) for _ in range(50)]
    source = make_environment("source", shortcut=1.0)
    target = make_environment("target", shift=1.0, shortcut=1.0)

    def hues(law, c):
        colours = [albedo_palette(draw, law, num_classes)[c] for draw in draws]
        return np.array([colorsys.rgb_to_hsv(*colour)[0] for colour in colours])

    for c in range(num_classes):
        offset = (hues(source, c) - c / num_classes + 0.5) % 1.0 - 0.5
        assert np.abs(offset).max() < 5 * 0.02
    spread = [np.ptp(hues(target, c)) for c in range(num_classes)]
    assert min(spread) > 0.2


def test_permuted_law_gives_class_c_the_hue_of_class_pi_c_and_leaves_the_rest():
    import colorsys

    num_classes = 5
    permutation = hue_derangement(num_classes, 0)
    rng = np.random.default_rng(0)
    draws = [draw_residuals(rng, num_classes + 1) for _ in range(50)]
    source = make_environment("source", shortcut=1.0)
    permuted = permuted_environment(permutation)
    for draw in draws:
        own = albedo_palette(draw, source, num_classes)
        moved = albedo_palette(draw, permuted, num_classes)
        for c in range(num_classes):
            hue = colorsys.rgb_to_hsv(*moved[c])[0]
            offset = (hue - permutation[c] / num_classes + 0.5) % 1.0 - 0.5
            assert abs(offset) < 5 * 0.02
            assert np.allclose(colorsys.rgb_to_hsv(*own[c])[1:], colorsys.rgb_to_hsv(*moved[c])[1:])
        assert np.array_equal(own[num_classes], moved[num_classes])


def test_hsv_to_rgb_matches_colorsys():
    import colorsys

    rng = np.random.default_rng(1)
    hsv = rng.uniform(size=(20, 3))
    expected = np.array([colorsys.hsv_to_rgb(*row) for row in hsv])
    assert np.allclose(hsv_to_rgb(hsv[:, 0], hsv[:, 1], hsv[:, 2]), expected, atol=1e-12)


def test_written_split_loads_with_plain_numpy_with_documented_dtypes_and_ranges(tmp_path):
    config = SceneConfig(resolution=(16, 20), seed=3)
    environment = make_environment("target", shift=0.5)
    write_split(tmp_path, "val", 3, environment, config=config, progress=False)
    folder = tmp_path / "val"
    for i in range(3):
        image = np.load(folder / "image" / f"{i}.npy")
        label = np.load(folder / "label" / f"{i}.npy")
        depth = np.load(folder / "depth" / f"{i}.npy")
        normal = np.load(folder / "normal" / f"{i}.npy")
        assert image.dtype == np.float32 and image.shape == (16, 20, 3)
        assert 0 <= image.min() and image.max() <= 1
        assert label.dtype == np.int64 and label.shape == (16, 20)
        assert label.min() >= -1 and label.max() < config.num_classes
        assert depth.dtype == np.float32 and depth.shape == (16, 20) and depth.min() >= 0
        assert normal.dtype == np.float32 and normal.shape == (16, 20, 3)
        valid = depth > 0
        assert np.allclose(np.linalg.norm(normal[valid], axis=-1), 1, atol=1e-5)
        assert (normal[~valid] == 0).all() and (label[~valid] == -1).all()
        for name in ("albedo", "shading"):
            truth = np.load(folder / name / f"{i}.npy")
            assert truth.dtype == np.float32 and truth.shape == (16, 20, 3)
        rendered = RenderedScenes(3, "val", environment, config=config)[i]
        assert np.array_equal(rendered["segmentation"].numpy(), label)
        assert np.array_equal(rendered["depth"][0].numpy(), depth)
        assert np.allclose(
            rendered["image"].permute(1, 2, 0).numpy(), image, rtol=FLOAT32_ULPS, atol=FLOAT32_ULPS
        )
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["class_names"] == list(config.class_names) and meta["seed"] == 3
    assert meta["splits"]["val"]["n"] == 3
    assert meta["splits"]["val"]["environment"]["name"] == "target"


def test_writer_refuses_to_mix_configurations_or_overwrite_silently(tmp_path):
    write_split(tmp_path, "train", 1, make_environment("source"), SMALL, progress=False)
    with pytest.raises(InvalidParameterError, match="already holds samples"):
        write_split(tmp_path, "train", 1, make_environment("source"), SMALL, progress=False)
    other = dataclasses.replace(SMALL, seed=5)
    with pytest.raises(InvalidParameterError, match="another generator configuration"):
        write_split(tmp_path, "val", 1, make_environment("source"), other, progress=False)
    write_split(
        tmp_path, "train", 1, make_environment("target"), SMALL, overwrite=True, progress=False
    )
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["splits"]["train"]["environment"]["name"] == "target"


def test_cli_renders_a_split_and_reports_bad_input(tmp_path, capsys):
    root = tmp_path / "scenes"
    arguments = ["data", "render", "--root", str(root), "--n", "2", "--resolution", "16x24"]
    assert coremtl_main([*arguments, "--env", "target", "--shift", "0.3", "--seed", "2"]) == 0
    assert np.load(root / "train" / "image" / "1.npy").shape == (16, 24, 3)
    assert coremtl_main([*arguments[:-1], "0"]) == 2
    assert "--resolution: expected N or HxW" in capsys.readouterr().err
    assert coremtl_main([*arguments[:4], "--n", "0"]) == 2
    assert "--n: expected a positive number" in capsys.readouterr().err
    assert coremtl_main([*arguments, "--shift", "1.5", "--overwrite"]) == 2
    assert "shift: expected a finite number in [0.0, 1.0]" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: SceneConfig(resolution=(0, 64)), "resolution: expected a positive integer"),
        (lambda: SceneConfig(resolution=(64, -1)), "resolution: expected a positive integer"),
        (lambda: SceneConfig(classes=()), "classes: expected at least one class"),
        (
            lambda: SceneConfig(classes=(SceneClass("floor", "plane"),)),
            "classes: expected at least one non-plane",
        ),
        (lambda: SceneClass("ball", "sphere", radius=(-0.2, 0.5)), r"classes\[ball\].radius"),
        (lambda: SceneClass("ball", "torus"), r"classes\[ball\].shape: expected one of"),
        (lambda: SceneConfig(min_objects=3, max_objects=2), "max_objects: expected >="),
        (lambda: SceneConfig(fov_deg=0), "fov_deg: expected a value in"),
        (lambda: SceneConfig(camera_height=-1.0), "camera_height: expected a positive number"),
        (lambda: make_environment("target", shift=-0.1), "shift: expected a finite number in"),
        (lambda: make_environment("moon"), "env: expected one of"),
        (lambda: make_environment("source", shortcut=2.0), "shortcut: expected a finite number in"),
        (
            lambda: permuted_environment((1, 0), strength=2.0),
            "strength: expected a finite number in",
        ),
        (lambda: permuted_environment((0, 0, 1)), "hue_permutation: expected a permutation"),
        (
            lambda: albedo_palette(
                draw_residuals(np.random.default_rng(0), 6), permuted_environment((1, 0)), 5
            ),
            "hue_permutation: expected a permutation of the 5 classes",
        ),
        (lambda: RenderedScenes(0), "length: expected a positive integer"),
        (lambda: RenderedScenes(4, resolution=(0, 8)), "resolution: expected a positive integer"),
        (
            lambda: write_split("/nonexistent-root", "train", 0, make_environment("source")),
            "n: expected a positive integer",
        ),
    ],
)
def test_bad_parameters_name_the_parameter(build, message):
    with pytest.raises(InvalidParameterError, match=message):
        build()


def test_dataset_index_out_of_range_raises_index_error():
    dataset = RenderedScenes(2, config=SMALL)
    with pytest.raises(IndexError, match="out of range for 2 rendered scenes"):
        dataset[2]
