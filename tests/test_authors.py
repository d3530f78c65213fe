"""The authors' configuration of CORE-MTL (Hope-Rita/CORE-MTL, configs/resnet/): the record, its
translation to the library's objective and stages, and ``coremtl.build(weights="authors")``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import coremtl
from coremtl import authors
from coremtl.objective import CoreMTLObjective
from coremtl.tasks import Task
from scm.validation import InvalidParameterError

TASKS = [Task("label", "classification", 3), Task("flag", "classification", 1)]


def backbone() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU())


def data(n: int = 16) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(2)
    return {
        "x": torch.rand(n, 3, 8, 8, generator=generator),
        "label": torch.randint(0, 3, (n,), generator=generator),
        "flag": torch.randint(0, 2, (n,), generator=generator),
    }


def test_every_record_is_a_row_of_the_module_docstring_table():
    rows = [line for line in authors.__doc__.splitlines() if line.startswith("| ``")]
    assert len(rows) == len(authors.AUTHORS_CONFIGS)
    for config, row in zip(authors.AUTHORS_CONFIGS.values(), rows, strict=True):
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[0] == f"``{config.file}``"
        assert float(cells[1]) == config.cka_weight
        assert cells[4] == f"{config.appearance_weight:g} x {config.l1_weight:g}"


@pytest.mark.parametrize(
    ("name", "epochs", "expected"),
    [
        ("cityscapes", 100, (10, 15)),
        ("cityscapes", 20, (2, 3)),
        ("nyuv2", 100, (5, 5)),
        ("gta5_to_cityscapes", 10, (1, 2)),
        ("celeba", 6, (0, 0)),
    ],
)
def test_the_stages_are_the_authors_epochs_scaled_to_the_run(name, epochs, expected):
    assert authors.stages(name, epochs) == expected


def test_the_cka_ramp_ends_and_cfa_starts_at_the_authors_epochs():
    steps = 10
    for name, config in authors.AUTHORS_CONFIGS.items():
        objective = CoreMTLObjective.authors(name, config.epochs, steps)
        start = config.reconstruction_epochs + config.task_only_epochs
        ramp_end = config.reconstruction_epochs + config.cka_warmup_epochs
        assert objective.cka_weight_at((ramp_end - start) * steps) == config.cka_weight
        if config.cka_warmup_epochs > 0:
            assert objective.cka_weight_at((ramp_end - start) * steps - 1) < config.cka_weight
        if config.cfa_weight > 0:
            assert objective.cfa_start_step == (max(config.cfa_start_epoch, start) - start) * steps
        assert objective.debiased_cka is False
        assert objective.cfa_weight == config.cfa_weight
        assert objective.reconstruction_weight == config.appearance_weight * config.l1_weight


def test_relative_weights_keep_the_authors_ratio_to_the_task_losses():
    file = CoreMTLObjective.authors("cityscapes", 100, 10)
    relative = CoreMTLObjective.authors("cityscapes", 100, 10, relative_to_tasks=True, num_tasks=2)
    assert relative.cka_weight == pytest.approx(file.cka_weight / 15)
    assert relative.reconstruction_weight == pytest.approx(file.reconstruction_weight / 15)
    assert relative.cfa_weight == pytest.approx(2 * file.cfa_weight)
    celeba = CoreMTLObjective.authors("celeba", 50, 10, relative_to_tasks=True, num_tasks=10)
    assert (celeba.cka_weight, celeba.reconstruction_weight) == pytest.approx((5.0, 50.0))
    with pytest.raises(InvalidParameterError, match="num_tasks: relative_to_tasks needs"):
        CoreMTLObjective.authors("cityscapes", 100, 10, relative_to_tasks=True)


def test_build_with_the_authors_weights_uses_their_objective_and_stages():
    example = data()["x"]
    preset = coremtl.build(
        "core-mtl", backbone(), TASKS, example, 20, steps_per_epoch=5, weights="authors"
    )
    starts = {source.name: source.start_epoch for source in preset.term_sources}
    assert (preset.task_start_epoch, starts["independence"]) == authors.stages("cityscapes", 20)
    independence = preset.term_sources[1].source
    expected = CoreMTLObjective.authors("cityscapes", 20, 5)
    assert independence.cka_weight == expected.cka_weight
    assert independence.cka_warmup_steps == expected.cka_warmup_steps
    assert independence.cfa_start_step == expected.cfa_start_step
    assert preset.term_sources[0].source.reconstruction_weight == 30.0
    assert preset.label == "core-mtl (authors' weights: cityscapes)"


def test_the_authors_late_start_is_reproduced_in_a_short_run():
    result = coremtl.train(
        "core-mtl", backbone(), TASKS, data(), epochs=10, batch_size=8, weights="authors"
    )
    active = [record["terms_active"] for record in result.history]
    assert active[:2] == [["grounding"], ["grounding"]]
    assert all(terms == ["grounding", "independence"] for terms in active[2:])
    assert [record["tasks_active"] for record in result.history][:2] == [False, True]


def test_authors_weights_are_refused_in_one_line_where_they_cannot_apply():
    example = data()["x"]
    with pytest.raises(InvalidParameterError, match="weights: expected one of"):
        coremtl.build("core-mtl", backbone(), TASKS, example, 10, weights="paper")
    with pytest.raises(InvalidParameterError, match="weights: 'authors' sets the objective"):
        coremtl.build(
            "core-mtl",
            backbone(),
            TASKS,
            example,
            10,
            weights="authors",
            objective=CoreMTLObjective(),
        )
    with pytest.raises(InvalidParameterError, match="steps_per_epoch: weights='authors'"):
        coremtl.build("core-mtl", backbone(), TASKS, example, 10, weights="authors")
    with pytest.raises(InvalidParameterError, match="authors_config: expected one of nyuv2"):
        coremtl.build(
            "core-mtl",
            backbone(),
            TASKS,
            example,
            10,
            steps_per_epoch=2,
            weights="authors",
            authors_config="coco",
        )
    with pytest.raises(InvalidParameterError, match="authors_config: 'celeba' is read with"):
        coremtl.build("core-mtl", backbone(), TASKS, example, 10, authors_config="celeba")
    with pytest.raises(InvalidParameterError, match="weights: applies to method 'core-mtl'"):
        coremtl.build("ew", backbone(), TASKS, example, 10, weights="authors")
