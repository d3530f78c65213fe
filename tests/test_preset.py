"""The library preset: CORE-MTL and every baseline on a user's backbone and tasks, the adaptive
heads and decoders, the schedule fitted to the run length, the README's own-data-set script."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

import coremtl
from coremtl import defaults
from coremtl.grounding import ConvDecoder, upsampling_stages
from coremtl.heads import DenseHead, PooledHead
from coremtl.objective import CoreMTLObjective
from coremtl.preset import build, train
from coremtl.tasks import Task, evaluate, task_loss
from coremtl.toy_images import coloured_squares
from scm.validation import InvalidParameterError

README = Path(__file__).resolve().parents[1] / "README.md"
README_MARKER = "<!-- readme-example: your own data set -->"
ARCHITECTURES = ("core-mtl", "ew", "pcgrad", "mtan", "rep-mtl", "mt-crl", "single-task")


def readme_example() -> str:
    """The python block that follows the marker in README.md."""
    text = README.read_text()
    assert text.count(README_MARKER) == 1
    after = text.split(README_MARKER, 1)[1]
    match = re.match(r"\s*```python\n(.*?)```", after, flags=re.DOTALL)
    assert match is not None, "README: no python block after the own-data-set marker"
    return match.group(1)


def test_the_readme_own_data_set_script_runs_and_reports_every_method():
    code = readme_example()
    assert len(code.strip().splitlines()) <= 32
    namespace: dict = {"__name__": "readme_example"}
    exec(compile(code, str(README), "exec"), namespace)
    results = namespace["results"]
    assert list(results) == ["core-mtl", "ew", "pcgrad"]
    for metrics in results.values():
        assert set(metrics) == {"count/accuracy", "large/accuracy", "hollow/accuracy"}
        assert all(0.0 <= value <= 1.0 for value in metrics.values())


def small_cnn() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
        nn.Sequential(nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU()),
    )


def image_data(n: int = 16, size: int = 16) -> dict:
    generator = torch.Generator().manual_seed(0)
    return {
        "x": torch.rand(n, 3, size, size, generator=generator),
        "label": torch.randint(0, 3, (n,), generator=generator),
        "flag": torch.randint(0, 2, (n,), generator=generator),
        "value": torch.randn(n, 2, generator=generator),
        "mask": torch.randint(-1, 2, (n, size, size), generator=generator),
    }


TASKS = [
    Task("label", "classification", 3),
    Task("flag", "classification", 1),
    Task("value", "regression", 2),
    Task("mask", "dense", 2),
]


@pytest.mark.parametrize("method", ARCHITECTURES)
def test_every_method_trains_on_the_same_backbone_and_predicts_every_task(method):
    data = image_data()
    backbone = small_cnn()
    before = [p.detach().clone() for p in backbone.parameters()]
    result = train(method, backbone, TASKS, data, val_data=data, epochs=3, batch_size=8)
    for parameter, original in zip(backbone.parameters(), before, strict=True):
        assert torch.equal(parameter, original), "the user's backbone must not be trained"
    predictions = result.model.eval()(data["x"]).predictions
    assert predictions["label"].shape == (16, 3)
    assert predictions["flag"].shape == (16, 1)
    assert predictions["value"].shape == (16, 2)
    assert predictions["mask"].shape == (16, 2, 16, 16)
    assert set(result.val) == {
        "label/accuracy", "flag/accuracy", "value/mse", "mask/accuracy", "mask/miou"
    }
    assert len(result.history) == 3


def test_methods_start_from_the_same_backbone_weights():
    backbone, example = small_cnn(), image_data()["x"]
    core = build("core-mtl", backbone, TASKS, example, epochs=6)
    shared = build("ew", backbone, TASKS, example, epochs=6)
    for a, b in zip(core.model.encoder.parameters(), shared.model.trunk.parameters(), strict=True):
        assert torch.equal(a, b)
    assert core.model.encoder is not backbone


def test_core_mtl_schedule_adapts_to_the_run_length():
    assert defaults.stage_starts(6) == (1, 2)
    assert defaults.stage_starts(200) == (20, 40)
    assert defaults.stage_starts(2) == (1, 1)
    preset = build("core-mtl", small_cnn(), TASKS, image_data()["x"], epochs=6, steps_per_epoch=10)
    assert preset.task_start_epoch == 1
    starts = {source.name: source.start_epoch for source in preset.term_sources}
    assert starts == {"grounding": 0, "independence": 2}
    independence = preset.term_sources[1].source
    assert independence.cka_weight == defaults.CKA_WEIGHT
    assert independence.cfa_weight == defaults.CFA_WEIGHT
    assert independence.cfa_mode == "input"
    assert independence.cka_warmup_steps == (6 - 2) * 10 // 4
    assert preset.term_sources[0].source.reconstruction_weight == defaults.RECONSTRUCTION_WEIGHT


def test_the_staged_run_switches_terms_on_at_their_epochs():
    data = image_data(n=16)
    tasks = [Task("label", "classification", 3)]
    result = train("core-mtl", small_cnn(), tasks, data, epochs=6, batch_size=8)
    active = [(r["tasks_active"], r["terms_active"]) for r in result.history]
    assert active[0] == (False, ["grounding"])
    assert active[1] == (True, ["grounding"])
    assert all(record == (True, ["grounding", "independence"]) for record in active[2:])
    assert (
        "term/cka" in result.history[2]["train"] and "loss/label" not in result.history[0]["train"]
    )


def test_schedules_that_never_start_are_refused_in_one_line():
    example = image_data()["x"]
    with pytest.raises(InvalidParameterError, match="epochs: the task stage starts at epoch 1"):
        build("core-mtl", small_cnn(), TASKS, example, epochs=1)
    with pytest.raises(InvalidParameterError, match=r"independence \(CKA, CFA\) stage starts at"):
        build("core-mtl", small_cnn(), TASKS, example, epochs=4, stages=(1, 5))
    with pytest.raises(InvalidParameterError, match="starts before the tasks"):
        build("core-mtl", small_cnn(), TASKS, example, epochs=4, stages=(2, 1))


@pytest.mark.parametrize(
    ("input_size", "feature_size", "stages"),
    [((16, 16), (4, 4), 2), ((28, 28), (4, 4), 3), ((28, 28), (7, 7), 2), ((16, 16), (16, 16), 0)],
)
def test_upsampling_stages_follow_the_input_and_feature_sizes(input_size, feature_size, stages):
    assert upsampling_stages(input_size, feature_size) == stages


@pytest.mark.parametrize("size", [16, 28])
@pytest.mark.parametrize("stride", [1, 2, 3, 4, 8])
def test_the_conv_decoder_reconstructs_the_input_size_for_any_stride(size, stride):
    features = nn.Conv2d(3, 8, 3, stride=stride, padding=1)(torch.rand(2, 3, size, size))
    decoder = ConvDecoder.for_sizes(4, 4, (3, size, size), features.shape[-2:], hidden_channels=8)
    assert decoder(features[:, :4], features[:, 4:]).shape == (2, 3, size, size)


def test_a_vector_backbone_gets_an_mlp_decoder_of_the_image_and_pooled_heads():
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(3 * 28 * 28, 12), nn.ReLU())
    data = image_data(n=8, size=28)
    tasks = [Task("label", "classification", 3), Task("value", "regression", 2)]
    preset = build("core-mtl", backbone, tasks, data["x"], epochs=6)
    forward = preset.model(data["x"])
    assert forward.z_s.shape == (8, 6)
    assert preset.model.decode(forward.z_s, forward.z_r).shape == (8, 3, 28, 28)
    terms = preset.term_sources[0].source.terms(preset.model, data, forward, 0)
    assert set(terms) == {"reconstruction"}


def test_what_cannot_be_adapted_is_refused_in_one_line():
    vector_backbone = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 8))
    example = image_data()["x"]
    with pytest.raises(InvalidParameterError, match=r"tasks\['mask'\]: a dense task needs"):
        build("ew", vector_backbone, TASKS, example, epochs=6)
    with pytest.raises(InvalidParameterError, match="grounding: 'hard' renders an image"):
        build("core-mtl", vector_backbone, TASKS[:3], example, epochs=6, grounding="hard")
    with pytest.raises(InvalidParameterError, match="backbone: MTAN attends over stages"):
        build("mtan", vector_backbone, TASKS[:1], example, epochs=6)
    with pytest.raises(InvalidParameterError, match="method: expected one of core-mtl"):
        build("core", small_cnn(), TASKS, example, epochs=6)
    with pytest.raises(InvalidParameterError, match="backbone: expected feature vectors"):
        build("ew", nn.Flatten(2), TASKS, example, epochs=6)
    with pytest.raises(InvalidParameterError, match="batch_size: the debiased CKA"):
        train("core-mtl", small_cnn(), TASKS, image_data(), epochs=6, batch_size=2)
    with pytest.raises(InvalidParameterError, match="trainer_options: epochs not among"):
        train("ew", small_cnn(), TASKS, image_data(), trainer_options={"epochs": 3})
    with pytest.raises(InvalidParameterError, match="balancer: method 'pcgrad' is itself"):
        build("pcgrad", small_cnn(), TASKS, example, epochs=6, balancer="mgda")
    with pytest.raises(InvalidParameterError, match=r"tasks\['a'\].kind: expected one of"):
        Task("a", "segmentation", 2)
    with pytest.raises(InvalidParameterError, match="tasks: expected distinct names"):
        build("ew", small_cnn(), [TASKS[0], TASKS[0]], example, epochs=6)


class DictDataset(torch.utils.data.Dataset):
    def __init__(self, tensors: dict):
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors["x"])

    def __getitem__(self, index: int) -> dict:
        return {key: value[index] for key, value in self.tensors.items()}


def test_a_dataset_of_dicts_trains_like_the_mapping_of_tensors():
    data = image_data()
    tasks = TASKS[:2]
    options = {"epochs": 2, "batch_size": 8, "trainer_options": {"grad_clip": 0.5}}
    from_mapping = train("ew", small_cnn(), tasks, data, val_data=data, **options)
    from_dataset = train("ew", small_cnn(), tasks, DictDataset(data), val_data=data, **options)
    assert from_dataset.val == from_mapping.val


def test_grounding_none_trains_tasks_from_the_start_without_input_cfa():
    preset = build("core-mtl", small_cnn(), TASKS, image_data()["x"], epochs=6, grounding="none")
    assert preset.model.decoder is None and preset.task_start_epoch == 0
    (independence,) = preset.term_sources
    assert independence.source.cfa_weight == 0.0 and independence.source.cka_weight > 0
    feature = CoreMTLObjective(cfa_mode="feature")
    kept = build(
        "core-mtl", small_cnn(), TASKS, image_data()["x"], 6, grounding="none", objective=feature
    )
    assert kept.term_sources[0].source.cfa_weight == defaults.CFA_WEIGHT


def test_heads_pool_maps_and_dense_heads_reach_the_input_size():
    head = PooledHead(4, 3)
    maps = torch.rand(2, 4, 5, 5)
    torch.testing.assert_close(head(maps), head(maps.mean(dim=(2, 3))))
    assert DenseHead(4, 2, (16, 16))(maps).shape == (2, 2, 16, 16)


def test_task_losses_and_metrics_follow_the_task_kind():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 3.0], [0.0, 1.0, 0.0], [5.0, 0.0, 0.0]])
    labels = torch.tensor([0, 2, 0, 1])
    batch = {"label": labels}
    expected = nn.functional.cross_entropy(logits, labels)
    torch.testing.assert_close(task_loss(TASKS[0])(logits, batch), expected)

    class Fixed(nn.Module):
        def forward(self, x):
            from coremtl.forward import Forward

            return Forward(predictions={"label": logits[: len(x)]}, shared=x)

    metrics = evaluate(Fixed(), {"x": torch.zeros(4, 1), **batch}, TASKS[:1], batch_size=3)
    assert metrics == {"label/accuracy": pytest.approx(0.5)}
    flag = task_loss(TASKS[1])(torch.tensor([[0.0], [2.0]]), {"flag": torch.tensor([1, 0])})
    bce = nn.functional.binary_cross_entropy_with_logits(
        torch.tensor([0.0, 2.0]), torch.tensor([1.0, 0.0])
    )
    torch.testing.assert_close(flag, bce)
    dense = torch.zeros(1, 2, 2, 2)
    dense[0, 1] = 1.0
    mask = torch.tensor([[[1, -1], [-1, -1]]])
    expected_dense = nn.functional.cross_entropy(dense[:, :, :1, :1], mask[:, :1, :1])
    torch.testing.assert_close(task_loss(TASKS[3])(dense, {"mask": mask}), expected_dense)


def test_coloured_squares_ties_the_colour_to_hollow_with_the_shortcut_probability():
    tied = coloured_squares(400, seed=3, shortcut=1.0)
    assert tied["x"].shape == (400, 3, 16, 16)
    assert bool(((tied["colour"] >= 2).long() == tied["hollow"]).all())
    free = coloured_squares(4000, seed=4, shortcut=0.0)
    agreement = float(((free["colour"] >= 2).long() == free["hollow"]).float().mean())
    assert abs(agreement - 0.5) <= 4 * (0.25 / 4000) ** 0.5
    assert torch.equal(coloured_squares(8, seed=5)["x"], coloured_squares(8, seed=5)["x"])
    with pytest.raises(InvalidParameterError, match="shortcut: expected a probability"):
        coloured_squares(8, shortcut=1.5)


def test_the_package_exports_the_entry_points_lazily():
    assert coremtl.train is train and coremtl.Task is Task
    assert "core-mtl" in coremtl.METHODS and "pcgrad" in coremtl.METHODS
    with pytest.raises(AttributeError):
        coremtl.not_a_name  # noqa: B018


def test_the_vision_method_config_reads_the_library_defaults():
    from experiments.vision.config import MethodConfig

    method, objective = MethodConfig(), CoreMTLObjective()
    for name in (
        "cka_weight",
        "cka_warmup_steps",
        "debiased_cka",
        "cfa_weight",
        "cfa_probability",
        "reconstruction_weight",
    ):
        assert getattr(method, name) == getattr(objective, name), name
    assert (method.cka_weight, method.cfa_weight, method.cfa_probability) == (
        defaults.CKA_WEIGHT,
        defaults.CFA_WEIGHT,
        defaults.CFA_PROBABILITY,
    )


@pytest.mark.parametrize("balancer", ["pcgrad", "uw"])
def test_core_mtl_combines_with_any_balancer_by_name(balancer):
    data = image_data()
    result = train(
        "core-mtl", small_cnn(), TASKS[:2], data, epochs=3, batch_size=8, balancer=balancer
    )
    assert result.preset.balancer.name == balancer
    assert result.history[-1]["terms_active"] == ["grounding", "independence"]
