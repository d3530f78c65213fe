"""The real-image shortcut benchmark: two bundled handwritten digits per image, one nuisance."""

from __future__ import annotations

import math
import socket
from types import SimpleNamespace

import pytest
import torch
from scipy.stats import chi2_contingency

import coremtl
from experiments.synthetic.shortcuts.digits import (
    CLASSES,
    NUISANCE_DESCRIPTIONS,
    NUISANCES,
    PALETTE,
    POSITIONS,
    SPLITS,
    SUITE_SPLITS,
    DigitBenchmark,
    digit_derangement,
    digit_images,
    digit_pools,
    digit_tasks,
    digits_split,
    nuisance_agreement,
)
from scm.validation import InvalidParameterError

SAMPLES = 4000
SE_BOUND = 4.0
"""Agreement rates must lie within this many binomial standard errors (two-sided 6e-5)."""


def binomial_se(probability: float, n: int) -> float:
    return math.sqrt(probability * (1 - probability) / n)


def test_loading_and_rendering_never_touch_the_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    digit_images.cache_clear()
    images, labels = digit_images()
    assert images.shape == (1797, 8, 8)
    assert sorted(labels.unique().tolist()) == list(range(CLASSES))
    assert digits_split("source_train", 8, "colour", 0.5)["x"].shape == (8, 3, 16, 16)


@pytest.mark.parametrize("nuisance", NUISANCES)
def test_split_has_the_documented_shapes_dtypes_and_range(nuisance):
    data = digits_split("source_train", 64, nuisance, 0.9, seed=3)
    assert set(data) == {"x", "left", "right", "nuisance"}
    assert data["x"].shape == (64, 3, 16, 16) and data["x"].dtype == torch.float32
    assert 0.0 <= float(data["x"].min()) and float(data["x"].max()) <= 1.0
    for key in ("left", "right", "nuisance"):
        assert data[key].shape == (64,) and data[key].dtype == torch.long
        assert 0 <= int(data[key].min()) and int(data[key].max()) < CLASSES
    assert NUISANCE_DESCRIPTIONS[nuisance]


def test_split_is_a_function_of_seed_and_split_name():
    first = digits_split("target_val", 200, "texture", 0.5, seed=7)
    again = digits_split("target_val", 200, "texture", 0.5, seed=7)
    for key in first:
        assert torch.equal(first[key], again[key])
    other_split = digits_split("source_val", 200, "texture", 0.5, seed=7)
    other_seed = digits_split("target_val", 200, "texture", 0.5, seed=8)
    assert not torch.equal(first["x"], other_split["x"])
    assert not torch.equal(first["x"], other_seed["x"])


def test_pools_are_disjoint_and_of_the_requested_sizes():
    sizes = {"source_train": 900, "source_val": 300, "target_val": 250, "target_test": 347}
    pools = digit_pools(seed=2, pool_sizes=sizes)
    assert {name: len(pool) for name, pool in pools.items()} == sizes
    everything = torch.cat(list(pools.values()))
    assert len(everything.unique()) == len(everything)
    assert not torch.equal(
        pools["source_train"], digit_pools(seed=3, pool_sizes=sizes)["source_train"]
    )


def test_a_split_draws_its_digits_from_its_own_pool_only():
    sizes = {"source_train": 1, "source_val": 1, "target_val": 1, "target_test": 1}
    _, labels = digit_images()
    pools = digit_pools(seed=0, pool_sizes=sizes)
    for split in SPLITS:
        data = digits_split(split, 50, "colour", 0.0, pool_sizes=sizes)
        own = int(labels[pools[split][0]])
        assert data["left"].eq(own).all() and data["right"].eq(own).all()


@pytest.mark.parametrize("strength", [0.0, 0.5, 0.9, 0.95])
def test_source_agreement_is_p_plus_the_uniform_share(strength):
    data = digits_split("source_train", SAMPLES, "colour", strength, seed=1)
    expected = strength + (1 - strength) / CLASSES
    assert abs(nuisance_agreement(data) - expected) < SE_BOUND * binomial_se(expected, SAMPLES)


def test_full_strength_ties_every_nuisance_to_the_class():
    data = digits_split("source_train", 500, "texture", 1.0, seed=1)
    assert nuisance_agreement(data) == 1.0


def test_random_target_nuisance_is_independent_of_both_labels():
    data = digits_split("target_test", SAMPLES, "colour", 0.0, seed=4)
    chance = 1 / CLASSES
    assert abs(nuisance_agreement(data) - chance) < SE_BOUND * binomial_se(chance, SAMPLES)
    for task in ("left", "right"):
        table = torch.zeros(CLASSES, CLASSES)
        table.index_put_((data[task], data["nuisance"]), torch.ones(SAMPLES), accumulate=True)
        assert chi2_contingency(table.numpy()).pvalue > 1e-3


def test_permuted_target_never_agrees_with_f_and_always_with_f_of_pi():
    for seed in range(3):
        data = digits_split("target_test", 500, "colour", 1.0, seed=seed, permuted=True)
        assert nuisance_agreement(data) == 0.0
        assert nuisance_agreement(data, digit_derangement(seed)) == 1.0


def test_derangement_moves_every_class_and_depends_on_the_seed():
    permutations = [digit_derangement(seed) for seed in range(5)]
    for permutation in permutations:
        assert sorted(permutation.tolist()) == list(range(CLASSES))
        assert not permutation.eq(torch.arange(CLASSES)).any()
    assert len({tuple(p.tolist()) for p in permutations}) > 1


def test_strength_kind_and_target_change_only_the_nuisance():
    base = digits_split("source_val", 300, "colour", 0.0, seed=5)
    for nuisance, strength, permuted in [("colour", 0.9, False), ("texture", 1.0, True)]:
        other = digits_split("source_val", 300, nuisance, strength, seed=5, permuted=permuted)
        assert torch.equal(base["left"], other["left"])
        assert torch.equal(base["right"], other["right"])
    tied = digits_split("source_val", 300, "colour", 0.9, seed=5)
    moved = tied["nuisance"] != base["nuisance"]
    assert torch.equal(tied["nuisance"][moved], tied["left"][moved])
    assert torch.equal(tied["x"].amax(dim=1), base["x"].amax(dim=1))


def test_colour_paints_the_left_digit_in_the_value_s_hue_and_leaves_the_right_one_white():
    data = digits_split("source_train", 200, "colour", 1.0, seed=0)
    only_left, only_right = data["x"][..., :7], data["x"][..., 9:]
    painted = only_left.amax(dim=1, keepdim=True) * PALETTE[data["nuisance"]][:, :, None, None]
    assert torch.allclose(only_left, painted, atol=1e-6)
    assert torch.equal(only_right[:, 0], only_right[:, 1])
    assert torch.equal(only_right[:, 1], only_right[:, 2])
    assert float(only_right.max()) > 0.9


def test_texture_is_a_grey_grating_of_the_value_s_orientation_and_period():
    contrast = 0.3
    texture = digits_split("target_val", 400, "texture", 1.0, seed=2, texture_contrast=contrast)
    blank = digits_split("target_val", 400, "colour", 1.0, seed=2)["x"].amax(dim=1) == 0
    x = texture["x"]
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])
    background = x[:, 0][blank]
    assert float(background.min()) >= 0.0 and float(background.max()) <= contrast + 1e-6
    vertical = texture["nuisance"] == 0
    grey, free = x[vertical, 0], blank[vertical]
    down = free[:, 1:, :] & free[:, :-1, :]
    assert torch.allclose(grey[:, 1:, :][down], grey[:, :-1, :][down], atol=1e-5)
    across = free[:, :, 4:] & free[:, :, :-4]
    assert torch.allclose(grey[:, :, 4:][across], grey[:, :, :-4][across], atol=1e-5)
    assert (
        float((grey[:, :, 2:] - grey[:, :, :-2])[free[:, :, 2:] & free[:, :, :-2]].abs().max())
        > 0.1
    )


def test_position_puts_the_left_digit_at_the_value_s_corner():
    sizes = {"source_train": 1, "source_val": 1, "target_val": 1, "target_test": 1}
    images, _ = digit_images()
    bitmap = images[digit_pools(seed=0, pool_sizes=sizes)["source_train"][0]]
    data = digits_split("source_train", 40, "position", 1.0, pool_sizes=sizes)
    for grey, value in zip(data["x"][:, 0], data["nuisance"].tolist(), strict=True):
        row, column = POSITIONS[value].tolist()
        window = grey[row : row + 8, column : column + 8]
        assert bool((window >= bitmap - 1e-6).all())
        outside = grey.clone()
        outside[row : row + 8, column : column + 8] = 0.0
        assert float(outside[:, :7].max()) == 0.0


@pytest.mark.parametrize(
    ("arguments", "parameter"),
    [
        ({"strength": -0.1}, "strength"),
        ({"strength": 1.5}, "strength"),
        ({"nuisance": "blur"}, "nuisance"),
        ({"split": "train"}, "split"),
        ({"n": 0}, "n"),
        ({"seed": -1}, "seed"),
        ({"texture_contrast": 2.0}, "texture_contrast"),
        ({"pool_sizes": {"source_train": 1000}}, "pool_sizes"),
        (
            {
                "pool_sizes": {
                    "source_train": 1500,
                    "source_val": 200,
                    "target_val": 200,
                    "target_test": 200,
                }
            },
            "pool_sizes",
        ),
        (
            {
                "pool_sizes": {
                    "source_train": 0,
                    "source_val": 200,
                    "target_val": 200,
                    "target_test": 200,
                }
            },
            "pool_sizes['source_train']",
        ),
    ],
)
def test_bad_arguments_stop_with_one_line_naming_the_parameter(arguments, parameter):
    call = {"split": "source_train", "n": 10, "nuisance": "colour", "strength": 0.5, **arguments}
    with pytest.raises(InvalidParameterError) as error:
        digits_split(**call)
    message = str(error.value)
    assert message.startswith(f"{parameter}:") and "\n" not in message


def test_the_tasks_train_through_coremtl_train():
    tasks = digit_tasks()
    assert [(t.name, t.kind, t.outputs) for t in tasks] == [
        ("left", "classification", CLASSES),
        ("right", "classification", CLASSES),
    ]
    torch.manual_seed(0)
    backbone = torch.nn.Sequential(
        torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.ReLU())
    )
    data = digits_split("source_train", 64, "texture", 0.9)
    result = coremtl.train("ew", backbone, tasks, data, test_data=data, epochs=1, batch_size=32)
    assert set(result.test) == {"left/accuracy", "right/accuracy"}


def law(kind: str, strength: float = 1.0) -> SimpleNamespace:
    """A stand-in for the suite's ``Law`` (kind and strength)."""
    return SimpleNamespace(kind=kind, strength=strength)


def test_benchmark_targets_share_their_images_and_differ_in_the_nuisance_only():
    benchmark = DigitBenchmark("colour")
    random = benchmark.draw(3, "target_test", 300, law("target"))
    permuted = benchmark.draw(3, "permuted_test", 300, law("permuted", 1.0))
    assert torch.equal(random["left"], permuted["left"])
    assert torch.equal(random["x"].amax(dim=1), permuted["x"].amax(dim=1))
    assert nuisance_agreement(permuted, torch.tensor(benchmark.permutation(3))) == 1.0
    source = benchmark.draw(3, "train", 300, law("source", 1.0))
    assert nuisance_agreement(source) == 1.0


def test_benchmark_probes_draw_other_images_from_the_target_pools():
    sizes = {"source_train": 1, "source_val": 1, "target_val": 1, "target_test": 1}
    _, labels = digit_images()
    pools = digit_pools(seed=0, pool_sizes=sizes)
    for split, (pool, stream) in SUITE_SPLITS.items():
        data = digits_split(pool, 20, "texture", 0.0, pool_sizes=sizes, stream=stream)
        assert data["left"].eq(int(labels[pools[pool][0]])).all(), split
    benchmark = DigitBenchmark("texture")
    fit = benchmark.draw(0, "probe_fit", 100, law("target"))
    val = benchmark.draw(0, "target_val", 100, law("target"))
    assert not torch.equal(fit["x"], val["x"])
    assert {pool for pool, _ in SUITE_SPLITS.values()} == set(SPLITS)
    training = {"train", "calibration_train"}
    assert {SUITE_SPLITS[name][0] for name in training} == {"source_train"}
    assert "source_train" not in {SUITE_SPLITS[name][0] for name in SUITE_SPLITS.keys() - training}


def test_benchmark_backbone_is_a_seeded_sequential_of_stages():
    benchmark = DigitBenchmark("position")
    backbone = benchmark.backbone(4)
    assert all(isinstance(stage, torch.nn.Sequential) for stage in backbone)
    again = benchmark.backbone(4).state_dict()
    assert all(torch.equal(value, again[name]) for name, value in backbone.state_dict().items())
    assert backbone(torch.zeros(2, 3, 16, 16)).shape == (2, 32, 2, 2)
    assert benchmark.key == "digits/position" and benchmark.metric == "left/accuracy"


def test_benchmark_refuses_an_unknown_nuisance_or_split_in_one_line():
    with pytest.raises(InvalidParameterError, match=r"^nuisance: expected one of"):
        DigitBenchmark("blur")
    with pytest.raises(InvalidParameterError, match=r"^split: expected one of train"):
        DigitBenchmark("colour").draw(0, "test", 10, law("target"))
    with pytest.raises(InvalidParameterError, match=r"^stream: expected a non-empty string"):
        digits_split("source_val", 10, "colour", stream="")
