"""coremtl.build with a caller's parts (coremtl/parts.py): its heads, decoder, grounding terms,
model classes and regulariser take the library's place, while build still decides what each
method is made of; seed=None draws the new layers from torch's generator as it stands; MT-CRL's
modules take a width."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import coremtl
from coremtl.architectures import RepMTLRegularizer, SharedBottom
from coremtl.architectures.mtcrl import MTCRLOptions
from coremtl.heads import task_heads
from coremtl.objective import CoreMTLObjective
from coremtl.parts import Parts
from coremtl.representation import DualStreamModel
from coremtl.tasks import Task
from scm.validation import InvalidParameterError

TASKS = [Task("label", "classification", 3), Task("mask", "dense", 2)]
EXAMPLE = torch.rand(2, 3, 8, 8)


def stages() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU()),
        nn.Sequential(nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.ReLU()),
    )


class RecordedHeads:
    """A heads factory that records the widths it is asked for."""

    def __init__(self) -> None:
        self.widths: list[int] = []

    def __call__(self, width: int) -> nn.Module:
        self.widths.append(width)
        return task_heads(TASKS, width, True, EXAMPLE.shape[1:])


@pytest.mark.parametrize(
    ("method", "options", "width"),
    [
        ("core-mtl", {"streams": (5, 3)}, 5),
        ("ew", {}, 8),
        ("rep-mtl", {}, 8),
        ("single-task", {}, 8),
        ("mt-crl", {"mtcrl": MTCRLOptions(modules=2, width=3)}, 6),
        ("mtan", {}, 8),
    ],
)
def test_every_method_puts_the_callers_heads_on_its_features(method, options, width):
    heads = RecordedHeads()
    preset = coremtl.build(method, stages(), TASKS, EXAMPLE, 4, parts=Parts(heads=heads), **options)
    assert heads.widths == [width]
    forward = preset.model(EXAMPLE)
    assert forward.predictions["mask"].shape == (2, 2, 8, 8)


def test_the_callers_decoder_model_class_and_grounding_terms_make_core_mtl():
    seen = {}

    def decoder(semantic, residual, heads):
        seen["widths"] = (semantic, residual)
        seen["heads"] = heads
        return nn.Identity()

    class Marked(DualStreamModel):
        pass

    own_terms = CoreMTLObjective(cka_weight=0.0, cfa_weight=0.0, reconstruction_weight=0.5)
    parts = Parts(
        decoder=decoder,
        dual_stream=Marked,
        grounding_terms=lambda module, objective: own_terms if module is not None else None,
    )
    preset = coremtl.build("core-mtl", stages(), TASKS, EXAMPLE, 4, streams=(5, 3), parts=parts)
    assert isinstance(preset.model, Marked) and seen["widths"] == (5, 3)
    assert seen["heads"] is preset.model.heads and isinstance(preset.model.decoder, nn.Identity)
    grounding, independence = preset.term_sources
    assert (grounding.name, grounding.start_epoch, grounding.source) == ("grounding", 0, own_terms)
    assert independence.source.reconstruction_weight == 0.0
    library = coremtl.build("core-mtl", stages(), TASKS, EXAMPLE, 4, parts=Parts(decoder=decoder))
    assert library.term_sources[0].source.reconstruction_weight == 1.0
    """without grounding terms of its own, the grounding stage is the objective's reconstruction"""


def test_the_callers_hard_sharing_model_and_regulariser_replace_the_library_ones():
    class Marked(SharedBottom):
        pass

    regularizer = RepMTLRegularizer(tsr_weight=0.3)
    parts = Parts(shared_bottom=Marked, regularizer=regularizer)
    preset = coremtl.build("rep-mtl", stages(), TASKS, EXAMPLE, 4, parts=parts)
    assert isinstance(preset.model, Marked)
    assert [source.source for source in preset.term_sources] == [regularizer]


def test_seed_none_draws_the_new_layers_from_the_generator_as_it_stands():
    def built(seed):
        return coremtl.build("core-mtl", stages(), TASKS, EXAMPLE, 4, seed=seed).model

    torch.manual_seed(5)
    first = built(None).state_dict()
    torch.manual_seed(5)
    again = built(None).state_dict()
    seeded = built(0).state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], seeded[k]) for k in first)


def test_mtcrl_modules_take_a_width_and_a_bad_width_is_one_line():
    preset = coremtl.build("mt-crl", stages(), TASKS, EXAMPLE, 4, mtcrl=MTCRLOptions(width=5))
    assert preset.model(EXAMPLE).shared.shape[1] == 4 * 5
    with pytest.raises(InvalidParameterError, match=r"^mtcrl\.width: expected a positive integer"):
        MTCRLOptions(width=0)
