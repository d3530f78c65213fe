"""Study 9 (the class-hue shortcut): its data, its probe and its smoke run."""

from __future__ import annotations

import importlib
import json
import math

import pytest
import torch

from experiments.synthetic import STUDIES
from experiments.synthetic.common import VERDICTS
from experiments.synthetic.shortcut_scenes import (
    ShortcutSetup,
    hue_class_agreement,
    linear_probe_accuracy,
    render,
    slot_hues,
    stream_probes,
    task_metrics,
)
from experiments.vision.scenes import hue_derangement
from experiments.vision.scenes.appearance import SHORTCUT_HUE_JITTER
from scm.validation import InvalidParameterError

SETUP = ShortcutSetup(resolution=(16, 16))
NUM_CLASSES = 5
SAMPLES = 300


def binomial_se(probability: float, n: int) -> float:
    return math.sqrt(probability * (1 - probability) / n)


@pytest.fixture(scope="module")
def target_data():
    return render(SETUP, 0, "train", SAMPLES, None)


def test_target_hue_does_not_name_the_class(target_data):
    agreement = hue_class_agreement(target_data["slot_hues"], NUM_CLASSES)
    slots = SAMPLES * NUM_CLASSES
    assert abs(agreement - 1 / NUM_CLASSES) < 4 * binomial_se(1 / NUM_CLASSES, slots)


@pytest.mark.parametrize("strength", [0.5, 0.8, 1.0])
def test_source_hue_names_the_class_at_the_set_strength(target_data, strength):
    """A slot follows its class hue with probability ``p``, else it is a palette draw that
    agrees as often as in the target: ``P[agree] = p + (1 - p) q``."""
    source = render(SETUP, 0, "train", SAMPLES, strength)
    slots = SAMPLES * NUM_CLASSES
    chance = hue_class_agreement(target_data["slot_hues"], NUM_CLASSES)
    expected = strength + (1 - strength) * chance
    measured = hue_class_agreement(source["slot_hues"], NUM_CLASSES)
    assert abs(measured - expected) < 4 * binomial_se(max(min(expected, 0.999), 0.001), slots)


def test_same_layouts_in_source_and_target(target_data):
    source = render(SETUP, 0, "train", 8, 1.0)
    assert torch.equal(source["segmentation"], target_data["segmentation"][:8])
    assert not torch.equal(source["image"], target_data["image"][:8])


def circle_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    distance = (a - b).abs() % 1.0
    return torch.minimum(distance, 1 - distance)


def test_hue_derangement_has_no_fixed_point_and_is_the_seeds():
    permutations = [hue_derangement(NUM_CLASSES, seed) for seed in range(40)]
    for permutation in permutations:
        assert sorted(permutation) == list(range(NUM_CLASSES))
        assert all(permutation[c] != c for c in range(NUM_CLASSES))
    assert permutations == [hue_derangement(NUM_CLASSES, seed) for seed in range(40)]
    assert len(set(permutations)) > 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_permuted_target_gives_class_c_the_own_hue_of_class_pi_c(seed):
    """At strength 1, the hue of class ``c`` is class ``pi(c)``'s own hue ``pi(c) / C`` (up to
    the shortcut's hue jitter), so the hue never names the class itself."""
    permutation = hue_derangement(NUM_CLASSES, seed)
    permuted = render(SETUP, seed, "target_test", 100, 1.0, permutation)
    hues = permuted["slot_hues"][:, :NUM_CLASSES]
    own_hue_of_pi = torch.tensor(permutation, dtype=torch.float32) / NUM_CLASSES
    assert circle_distance(hues, own_hue_of_pi).max() < 5 * SHORTCUT_HUE_JITTER
    assert hue_class_agreement(permuted["slot_hues"], NUM_CLASSES, permutation) == 1.0
    assert hue_class_agreement(permuted["slot_hues"], NUM_CLASSES) == 0.0


def test_permuted_target_shares_layouts_and_draws_with_the_random_target():
    """Same split names, same layouts; the two targets differ in the hue map alone, so at
    strength 0 the permuted target renders the random target's images bit for bit."""
    permutation = hue_derangement(NUM_CLASSES, 0)
    random_hue = render(SETUP, 0, "target_test", 12, None)
    permuted = render(SETUP, 0, "target_test", 12, 1.0, permutation)
    assert torch.equal(permuted["segmentation"], random_hue["segmentation"])
    assert torch.equal(permuted["depth"], random_hue["depth"])
    assert not torch.equal(permuted["image"], random_hue["image"])
    unpermuted = render(SETUP, 0, "target_test", 12, 0.0, permutation)
    assert torch.equal(unpermuted["image"], random_hue["image"])


def test_permuted_render_needs_a_strength():
    with pytest.raises(InvalidParameterError, match="shortcut: expected the permuted"):
        render(SETUP, 0, "target_test", 2, None, hue_derangement(NUM_CLASSES, 0))


def test_probe_detects_an_encoded_factor_and_not_a_random_one():
    generator = torch.Generator().manual_seed(0)
    n = 400
    labels = torch.randint(0, 2, (2 * n,), generator=generator)
    noise = torch.randn(2 * n, 8, generator=generator, dtype=torch.float64)
    encoded = noise.clone()
    encoded[:, 3] += 2.0 * labels.double()
    accuracy = linear_probe_accuracy(encoded[:n], labels[:n], encoded[n:], labels[n:])
    assert accuracy > 0.8
    chance = linear_probe_accuracy(noise[:n], labels[:n], noise[n:], labels[n:])
    assert abs(chance - 0.5) < 4 * binomial_se(0.5, n)


class _ColourStreams(torch.nn.Module):
    """``Z_s`` = the image itself (its pool is the mean colour), ``Z_r`` = noise."""

    def encode(self, images: torch.Tensor):
        noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(1))
        return images, noise


def test_stream_probes_find_hue_in_the_stream_that_holds_it():
    fit = render(SETUP, 0, "probe_fit", 256, None)
    held_out = render(SETUP, 0, "probe_eval", 256, None)
    probes = stream_probes(_ColourStreams(), fit, held_out, "cpu")
    assert probes["hue_probe_semantic"] > 0.75
    assert abs(probes["hue_probe_residual"] - 0.5) < 4 * binomial_se(0.5, 256)


def test_study_is_registered():
    assert STUDIES[9] == "experiments.synthetic.study9_shortcut"


@pytest.fixture(scope="module")
def smoke_result():
    module = importlib.import_module(STUDIES[9])
    return module.run(module.CONFIGS["smoke"], seed=0)


def test_smoke_run_registers_predictions_before_training(smoke_result):
    assert list(smoke_result)[:2] == ["config", "predictions"]
    assert smoke_result["registered_at"] <= smoke_result["first_training_at"]
    ids = [row["id"] for row in smoke_result["predictions"]]
    assert [row["id"] for row in smoke_result["prediction_outcomes"]] == ids
    for outcome in smoke_result["prediction_outcomes"]:
        assert outcome["held"] in (True, False, None)


def test_smoke_run_result(smoke_result, tmp_path):
    assert smoke_result["verdict"] in VERDICTS
    assert isinstance(smoke_result["finding"], str) and smoke_result["finding"]
    json.dumps(smoke_result, allow_nan=False)
    config = smoke_result["config"]
    runs = {(r["strength"], r["method"]) for r in smoke_result["records"]}
    assert (config["sweep_strength"], "CORE-MTL") in runs
    for record in smoke_result["records"]:
        assert 0.0 <= record["target_test"]["segmentation/miou"] <= 1.0
        assert 0.0 <= record["probes"]["hue_probe_semantic"] <= 1.0
    selection = smoke_result["selection"]
    assert selection["selected"] in selection["candidates"]
    paths = importlib.import_module(STUDIES[9]).plot(smoke_result, tmp_path)
    assert all(path.exists() for path in paths)


def test_smoke_run_reports_the_permuted_target_for_every_method(smoke_result):
    seeds = {r["seed"] for r in smoke_result["records"]}
    assert set(smoke_result["hue_permutations"]) == {str(seed) for seed in seeds}
    for seed, permutation in smoke_result["hue_permutations"].items():
        assert tuple(permutation) == hue_derangement(NUM_CLASSES, int(seed))
    for record in smoke_result["records"]:
        for split in ("permuted_val", "permuted_test"):
            assert 0.0 <= record[split]["segmentation/miou"] <= 1.0
    for cell in smoke_result["cells"].values():
        assert cell["target_permuted"]["n"] == len(seeds)
        for key in ("target_permuted_minus_ew", "permuted_minus_random"):
            assert set(cell[key]) == {"mean", "se", "n"}
        if cell["method"] == "EW":
            assert cell["target_permuted_minus_ew"]["mean"] == 0.0
    permuted = smoke_result["selection"]["permuted"]
    assert permuted["oracle"] in smoke_result["selection"]["candidates"]
    assert "selected_minus_best_balancer" in permuted
    agreement = smoke_result["data_check"]["hue_class_agreement"]
    assert agreement["permuted, against pi(c)"]["mean"] == 1.0
    assert agreement["permuted"]["mean"] == 0.0
    ids = [row["id"].split()[0] for row in smoke_result["prediction_outcomes"]]
    assert {"P9", "P10", "P11"} <= set(ids)
    assert "permuted-hue target" in smoke_result["finding"].lower()


def test_permuted_target_numbers_are_not_the_random_targets(smoke_result):
    """The permuted split is another split, not the random-hue one evaluated twice (the smoke
    nets predict the floor everywhere, so their mIoU is the same on both; their depth is not)."""
    assert any(
        r["permuted_test"][metric] != r["target_test"][metric]
        for r in smoke_result["records"]
        for metric in r["target_test"]
    )


class _HueReader(torch.nn.Module):
    """Segments by hue alone: pixel class = the class ``c`` whose own hue ``c / C`` is nearest
    to the pixel's hue (the model that uses nothing but the shortcut)."""

    def forward(self, images: torch.Tensor):
        from types import SimpleNamespace

        batch, _, height, width = images.shape
        pixels = images.permute(0, 2, 3, 1).reshape(-1, 1, 3)
        hue = slot_hues(pixels).reshape(batch, 1, height, width)
        class_hues = (torch.arange(NUM_CLASSES) / NUM_CLASSES)[None, :, None, None]
        logits = -circle_distance(hue, class_hues)
        depth = torch.zeros(batch, 1, height, width)
        return SimpleNamespace(predictions={"segmentation": logits, "depth": depth})


def test_a_hue_reader_is_wrong_on_every_class_of_the_permuted_target_only():
    """Right on the full-shortcut source, wrong at random on the random-hue target, wrong on
    (almost) every pixel on the permuted one: the jitter (0.02 turns) is a fifth of half the
    spacing of the class hues (0.1), so a pixel's nearest class hue is its ``pi(c)``."""
    permutation = hue_derangement(NUM_CLASSES, 0)
    accuracy = {
        name: task_metrics(
            _HueReader(), render(SETUP, 0, "target_test", 64, *law), NUM_CLASSES, "cpu"
        )["segmentation/pixel_accuracy"]
        for name, law in {
            "source": (1.0,),
            "random": (None,),
            "permuted": (1.0, permutation),
        }.items()
    }
    assert accuracy["source"] > 0.95
    assert accuracy["permuted"] < 0.01
    assert accuracy["random"] > accuracy["permuted"]


def test_paired_seeds_share_data_and_initialisation():
    from experiments.synthetic.shortcut_scenes import build_model

    torch.manual_seed(3)
    first = build_model(SETUP, NUM_CLASSES).state_dict()
    torch.manual_seed(3)
    second = build_model(SETUP, NUM_CLASSES).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert torch.equal(
        render(SETUP, 3, "val", 4, 0.9)["image"], render(SETUP, 3, "val", 4, 0.9)["image"]
    )
