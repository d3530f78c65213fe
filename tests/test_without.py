"""``without``: any CORE-MTL configuration ablated one term at a time (the library's weights, the
authors', or a given objective), the others kept as they were."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import coremtl
from coremtl.objective import CoreMTLObjective
from coremtl.tasks import Task
from scm.validation import InvalidParameterError

TASKS = [Task("label", "classification", 3), Task("mask", "dense", 2)]
EXAMPLE = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))


def backbone() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU())


def weights(**options) -> dict[str, float]:
    """The term weights of every stage of the built preset (the largest over stages)."""
    preset = coremtl.build("core-mtl", backbone(), TASKS, EXAMPLE, 6, steps_per_epoch=10, **options)
    found = {"cka": 0.0, "cfa": 0.0, "reconstruction": 0.0}
    for scheduled in preset.term_sources:
        source = scheduled.source
        for term in found:
            found[term] = max(found[term], float(getattr(source, f"{term}_weight", 0.0)))
    return found


@pytest.mark.parametrize(
    "base",
    [{}, {"weights": "authors"}, {"objective": CoreMTLObjective(cka_weight=0.3, cfa_weight=0.2)}],
    ids=["library", "authors", "given"],
)
@pytest.mark.parametrize("term", ["cka", "cfa", "reconstruction"])
def test_switching_a_term_off_zeroes_it_and_keeps_every_other(base, term):
    full = weights(**base)
    ablated = weights(**base, without=(term,))
    assert full[term] > 0 and ablated[term] == 0.0
    assert {k: v for k, v in ablated.items() if k != term} == {
        k: v for k, v in full.items() if k != term
    }


def test_the_label_names_what_was_switched_off():
    preset = coremtl.build(
        "core-mtl", backbone(), TASKS, EXAMPLE, 6, steps_per_epoch=10, weights="authors",
        without=("cfa", "cka"),
    )  # fmt: skip
    assert preset.label == "core-mtl (authors' weights: cityscapes, without CKA, CFA)"


@pytest.mark.parametrize(
    ("method", "without", "message"),
    [
        ("core-mtl", ("gradient",), "without: expected terms of"),
        ("core-mtl", "cka", "without: expected a tuple"),
        ("ew", ("cka",), "without: switches off CORE-MTL's terms"),
    ],
)
def test_a_bad_without_is_refused_in_one_line(method, without, message):
    with pytest.raises(InvalidParameterError, match=message):
        coremtl.build(method, backbone(), TASKS, EXAMPLE, 6, without=without)


def test_without_reconstruction_the_tasks_start_at_once_even_on_the_authors_schedule():
    preset = coremtl.build(
        "core-mtl", backbone(), TASKS, EXAMPLE, 6, steps_per_epoch=10, weights="authors",
        without=("reconstruction",),
    )  # fmt: skip
    assert preset.task_start_epoch == 0
    assert all(scheduled.name != "grounding" for scheduled in preset.term_sources)
    with pytest.raises(InvalidParameterError, match=r"stages: .* nothing trains before it"):
        coremtl.build(
            "core-mtl", backbone(), TASKS, EXAMPLE, 6, steps_per_epoch=10, stages=(2, 3),
            without=("reconstruction",),
        )  # fmt: skip


def test_every_ablation_of_the_authors_configuration_trains():
    """Each term switched off in turn, a short run trains to finite losses (the authors' schedule
    has a reconstruction stage before the tasks)."""
    data = {
        "x": torch.rand(8, 3, 8, 8, generator=torch.Generator().manual_seed(1)),
        "label": torch.randint(0, 3, (8,), generator=torch.Generator().manual_seed(2)),
        "mask": torch.randint(0, 2, (8, 8, 8), generator=torch.Generator().manual_seed(3)),
    }
    for term in ("cka", "cfa", "reconstruction"):
        result = coremtl.train(
            "core-mtl", backbone(), TASKS, data, epochs=3, batch_size=4, weights="authors",
            without=(term,),
        )  # fmt: skip
        assert result.history and all(
            torch.isfinite(torch.tensor(v)) for v in result.history[-1]["train"].values()
        )
