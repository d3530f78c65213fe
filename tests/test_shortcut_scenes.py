"""The rendered-scenes benchmark of the shortcut suite: its laws, its pairing and its probes."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import coremtl
from experiments.synthetic.shortcuts.benchmarks import Law
from experiments.synthetic.shortcuts.probes import chance_accuracy, probe_accuracy
from experiments.synthetic.shortcuts.scenes import (
    SceneBenchmark,
    SceneSetup,
    hue_class_agreement,
    slot_hues,
)
from experiments.vision.scenes.appearance import SHORTCUT_HUE_JITTER
from scm.validation import InvalidParameterError

BENCHMARK = SceneBenchmark(SceneSetup(resolution=(16, 16)))
CLASSES = BENCHMARK.num_classes
SAMPLES = 300
SE_BOUND = 4.0


def binomial_se(probability: float, n: int) -> float:
    return math.sqrt(probability * (1 - probability) / n)


def circle_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    distance = (a - b).abs() % 1.0
    return torch.minimum(distance, 1 - distance)


@pytest.fixture(scope="module")
def target():
    return BENCHMARK.draw(0, "train", SAMPLES, Law("target"))


def test_target_hue_does_not_name_the_class(target):
    agreement = hue_class_agreement(target["slot_hues"], CLASSES)
    slots = SAMPLES * CLASSES
    assert abs(agreement - 1 / CLASSES) < SE_BOUND * binomial_se(1 / CLASSES, slots)


@pytest.mark.parametrize("strength", [0.5, 0.8, 1.0])
def test_source_hue_names_the_class_at_the_set_strength(target, strength):
    """A slot follows its class hue with probability ``p``, else it is a palette draw that agrees
    as often as in the target: ``P[agree] = p + (1 - p) q``."""
    source = BENCHMARK.draw(0, "train", SAMPLES, Law("source", strength))
    chance = hue_class_agreement(target["slot_hues"], CLASSES)
    expected = strength + (1 - strength) * chance
    measured = hue_class_agreement(source["slot_hues"], CLASSES)
    bound = SE_BOUND * binomial_se(min(expected, 0.999), SAMPLES * CLASSES)
    assert abs(measured - expected) < bound


def test_source_and_target_share_layouts_and_differ_in_appearance(target):
    source = BENCHMARK.draw(0, "train", 8, Law("source", 1.0))
    assert torch.equal(source["segmentation"], target["segmentation"][:8])
    assert torch.equal(source["depth"], target["depth"][:8])
    assert not torch.equal(source["x"], target["x"][:8])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_permuted_target_gives_class_c_the_own_hue_of_class_pi_c(seed):
    permutation = BENCHMARK.permutation(seed)
    assert all(permutation[c] != c for c in range(CLASSES))
    permuted = BENCHMARK.draw(seed, "target_test", 100, Law("permuted", 1.0))
    hues = permuted["slot_hues"][:, :CLASSES]
    own_hue_of_pi = torch.tensor(permutation, dtype=torch.float32) / CLASSES
    assert circle_distance(hues, own_hue_of_pi).max() < 5 * SHORTCUT_HUE_JITTER
    assert hue_class_agreement(permuted["slot_hues"], CLASSES, permutation) == 1.0
    assert hue_class_agreement(permuted["slot_hues"], CLASSES) == 0.0


def test_the_two_targets_differ_in_the_hue_alone():
    """Same split names, same layouts; at strength 0 the permuted target is the random one."""
    random_hue = BENCHMARK.draw(0, "target_test", 12, Law("target"))
    permuted = BENCHMARK.draw(0, "target_test", 12, Law("permuted", 1.0))
    assert torch.equal(permuted["segmentation"], random_hue["segmentation"])
    assert not torch.equal(permuted["x"], random_hue["x"])
    unpermuted = BENCHMARK.draw(0, "target_test", 12, Law("permuted", 0.0))
    assert torch.equal(unpermuted["x"], random_hue["x"])


def test_the_nuisance_label_is_the_floor_hue_bin():
    data = BENCHMARK.draw(0, "probe_fit", 64, Law("target"))
    bins = torch.floor(data["slot_hues"][:, 0] * CLASSES).long().clamp(0, CLASSES - 1)
    assert torch.equal(data["nuisance"], bins)


def test_the_probe_chance_is_the_share_of_the_most_frequent_nuisance():
    """The floor's palette hues are not uniform over the bins, so chance is not ``1 / C``."""
    fit = BENCHMARK.draw(0, "probe_fit", 256, Law("target"))["nuisance"].numpy()
    held_out = BENCHMARK.draw(0, "probe_eval", 256, Law("target"))["nuisance"].numpy()
    most = np.bincount(fit).argmax()
    assert chance_accuracy(fit, held_out) == np.mean(held_out == most)
    assert chance_accuracy(fit, held_out) > 1 / CLASSES + SE_BOUND * binomial_se(1 / CLASSES, 256)


def test_a_law_outside_the_three_is_refused_in_one_line():
    with pytest.raises(InvalidParameterError, match="law: expected one of"):
        Law("shifted")
    with pytest.raises(InvalidParameterError, match="strength"):
        Law("source", 1.5)


def test_paired_seeds_share_data_and_initialisation():
    first, second = BENCHMARK.backbone(3).state_dict(), BENCHMARK.backbone(3).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not torch.equal(first["0.0.weight"], BENCHMARK.backbone(4).state_dict()["0.0.weight"])
    law = Law("source", 0.9)
    assert torch.equal(BENCHMARK.draw(3, "val", 4, law)["x"], BENCHMARK.draw(3, "val", 4, law)["x"])


def test_probe_detects_an_encoded_factor_and_not_a_random_one():
    generator = torch.Generator().manual_seed(0)
    n = 400
    labels = torch.randint(0, 2, (2 * n,), generator=generator).numpy()
    noise = torch.randn(2 * n, 8, generator=generator, dtype=torch.float64).numpy()
    encoded = noise.copy()
    encoded[:, 3] += 2.0 * labels
    assert probe_accuracy(encoded[:n], labels[:n], encoded[n:], labels[n:]) > 0.8
    chance = probe_accuracy(noise[:n], labels[:n], noise[n:], labels[n:])
    assert abs(chance - 0.5) < SE_BOUND * binomial_se(0.5, n)


class _HueReader(torch.nn.Module):
    """Segments by hue alone: the class whose own hue is nearest to the pixel's."""

    def forward(self, images: torch.Tensor):
        batch, _, height, width = images.shape
        pixels = images.permute(0, 2, 3, 1).reshape(-1, 1, 3)
        hue = slot_hues(pixels).reshape(batch, 1, height, width)
        class_hues = (torch.arange(CLASSES) / CLASSES)[None, :, None, None]
        logits = -circle_distance(hue, class_hues)
        depth = torch.zeros(batch, 1, height, width)
        return SimpleNamespace(predictions={"segmentation": logits, "depth": depth})


def test_a_hue_reader_is_right_on_the_source_and_wrong_on_every_class_of_the_permuted_target():
    laws = {"source": Law("source", 1.0), "random": Law("target"), "permuted": Law("permuted")}
    accuracy = {}
    for name, law in laws.items():
        data = BENCHMARK.draw(0, "target_test", 64, law)
        metrics = coremtl.evaluate(
            _HueReader(), {k: data[k] for k in ("x", "segmentation", "depth")}, BENCHMARK.tasks
        )
        accuracy[name] = metrics["segmentation/accuracy"]
    assert accuracy["source"] > 0.95
    assert accuracy["permuted"] < 0.01
    assert accuracy["random"] > accuracy["permuted"]
