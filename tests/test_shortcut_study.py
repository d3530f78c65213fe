"""Study 9 (the class-hue shortcut): its data, its probe and its smoke run."""

from __future__ import annotations

import json
import math

import pytest
import torch

from experiments.synthetic import STUDIES, study_module
from experiments.synthetic.common import VERDICTS
from experiments.synthetic.shortcut_scenes import (
    ShortcutSetup,
    hue_class_agreement,
    linear_probe_accuracy,
    render,
    stream_probes,
)

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
    module = study_module(9)
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
    paths = study_module(9).plot(smoke_result, tmp_path)
    assert all(path.exists() for path in paths)


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
