"""One name per method: the names of coremtl.METHODS, the older spellings read as those names in
one place (coremtl/names.py), and every reader of a method name going through it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import coremtl
from coremtl.labels import method_label
from coremtl.names import ALIASES, METHODS, canonical_method
from coremtl.tasks import Task
from scm.validation import InvalidParameterError


@pytest.mark.parametrize("name", METHODS)
def test_every_method_name_is_its_own_name(name):
    assert canonical_method(name) == name
    assert method_label(name).startswith(name)


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("coremtl", "core-mtl"),
        ("CORE-MTL", "core-mtl"),
        ("mtcrl", "mt-crl"),
        ("MT-CRL", "mt-crl"),
        ("repmtl", "rep-mtl"),
        ("Rep-MTL", "rep-mtl"),
        ("single", "single-task"),
        ("MTAN", "mtan"),
        ("PCGrad", "pcgrad"),
        (" ew ", "ew"),
    ],
)
def test_older_spellings_are_read_as_the_method_name(alias, name):
    assert canonical_method(alias) == name


def test_every_alias_stands_for_a_method_and_is_not_one():
    assert set(ALIASES.values()) <= set(METHODS)
    assert not set(ALIASES) & set(METHODS)


@pytest.mark.parametrize("name", ["core", "stl", "shared", "", 3, None])
def test_an_unknown_method_is_one_line_naming_the_parameter(name):
    with pytest.raises(
        InvalidParameterError, match=r"^model\.kind: expected one of core-mtl"
    ) as error:
        canonical_method(name, "model.kind")
    assert "\n" not in str(error.value) and repr(name) in str(error.value)


def test_build_reads_an_older_spelling_and_names_the_method_by_its_name():
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU())
    tasks = [Task("label", "classification", 2)]
    example = torch.rand(2, 3, 8, 8)
    preset = coremtl.build("MT-CRL", backbone, tasks, example, epochs=2)
    assert preset.method == "mt-crl" and preset.label.startswith("mt-crl")
    control = coremtl.build("ew", backbone, tasks, example, epochs=2, capacity_of="coremtl")
    assert control.label == "ew (capacity of core-mtl)"
