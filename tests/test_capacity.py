"""Capacity controls (``coremtl.build("ew", ..., capacity_of=...)``): hard sharing on the same
extra layers as CORE-MTL, MT-CRL and MTAN, with the prediction-path parameter counts matched."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import coremtl
from coremtl.architectures import SharedBottom
from coremtl.architectures.mtcrl import MTCRLOptions
from coremtl.capacity import prediction_path_parameters
from coremtl.tasks import Task
from scm.validation import InvalidParameterError

TASKS = [
    Task("label", "classification", 3),
    Task("value", "regression", 2),
    Task("mask", "dense", 2),
]
VECTOR_TASKS = TASKS[:2]


def conv_backbone() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2)),
        nn.Sequential(nn.Conv2d(8, 12, 3, stride=2, padding=1), nn.BatchNorm2d(12), nn.ReLU()),
    )


def vector_backbone() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 24), nn.ReLU()),
        nn.Sequential(nn.Linear(24, 16), nn.ReLU()),
    )


CASES = [(conv_backbone, TASKS), (vector_backbone, VECTOR_TASKS)]
IDS = ["maps", "vectors"]


def example() -> torch.Tensor:
    return torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def build(method: str, make_backbone, tasks, **options):
    return coremtl.build(method, make_backbone(), tasks, example(), 6, **options)


def elements_reached_by_the_predictions(model: nn.Module) -> int:
    """An independent count of the prediction path: the entries of every parameter tensor that
    the predictions' gradient reaches, and of the stream split only the rows whose gradient is
    not zero (the residual rows are cut off from heads on ``Z_s``)."""
    model.train()
    model.zero_grad()
    predictions = model(example()).predictions
    sum(p.square().sum() for p in predictions.values()).backward()
    total = 0
    for name, parameter in model.named_parameters():
        if parameter.grad is None:
            continue
        if name.startswith("split.projection"):
            rows = parameter.grad.reshape(parameter.shape[0], -1)
            total += int((rows != 0).any(dim=1).sum()) * rows.shape[1]
        else:
            total += parameter.numel()
    return total


@pytest.mark.parametrize(("make_backbone", "tasks"), CASES, ids=IDS)
@pytest.mark.parametrize("heads_on", ["semantic", "both"])
def test_the_core_mtl_control_has_exactly_its_prediction_path_parameters(
    make_backbone, tasks, heads_on
):
    method = build("core-mtl", make_backbone, tasks, heads_on=heads_on)
    control = build("ew", make_backbone, tasks, capacity_of="core-mtl", heads_on=heads_on)
    assert isinstance(control.model, SharedBottom) and control.term_sources == []
    count = prediction_path_parameters(method.model)
    assert count == prediction_path_parameters(control.model)
    assert count == elements_reached_by_the_predictions(method.model)
    assert count < sum(p.numel() for p in method.model.parameters())


@pytest.mark.parametrize(("make_backbone", "tasks"), CASES, ids=IDS)
@pytest.mark.parametrize("modules", [4, 2])
def test_the_mtcrl_control_has_its_parameters_but_the_routing_logits(make_backbone, tasks, modules):
    options = MTCRLOptions(modules=modules)
    method = build("mt-crl", make_backbone, tasks, mtcrl=options)
    control = build("ew", make_backbone, tasks, capacity_of="mt-crl", mtcrl=options)
    count = prediction_path_parameters(method.model)
    assert count - prediction_path_parameters(control.model) == len(tasks) * modules
    assert count == elements_reached_by_the_predictions(method.model)
    assert control.label == (
        "ew (capacity of mt-crl)" if modules == 4 else "ew (capacity of mt-crl with 2 module(s))"
    )


@pytest.mark.parametrize(("make_backbone", "tasks"), CASES, ids=IDS)
def test_the_mtan_control_matches_its_parameters_within_half_a_hidden_unit(make_backbone, tasks):
    method = build("mtan", make_backbone, tasks)
    control = build("ew", make_backbone, tasks, capacity_of="mtan")
    channels = 12 if make_backbone is conv_backbone else 16
    per_unit = 2 * channels + (3 if make_backbone is conv_backbone else 1)
    difference = prediction_path_parameters(method.model) - prediction_path_parameters(
        control.model
    )
    assert abs(difference) <= per_unit / 2
    assert prediction_path_parameters(method.model) == elements_reached_by_the_predictions(
        method.model
    )


@pytest.mark.parametrize("method", ["ew", "single-task", "rep-mtl"])
def test_the_prediction_path_of_plain_models_is_every_parameter(method):
    model = build(method, conv_backbone, TASKS).model
    assert prediction_path_parameters(model) == sum(p.numel() for p in model.parameters())
    assert prediction_path_parameters(model) == elements_reached_by_the_predictions(model)


def test_a_capacity_control_trains_with_any_balancer():
    generator = torch.Generator().manual_seed(3)
    data = {
        "x": torch.rand(8, 3, 16, 16, generator=generator),
        "label": torch.randint(0, 3, (8,), generator=generator),
        "value": torch.randn(8, 2, generator=generator),
    }
    result = coremtl.train(
        "uw", conv_backbone(), VECTOR_TASKS, data, epochs=1, batch_size=4, capacity_of="mtan"
    )
    assert result.preset.label == "uw (capacity of mtan)"
    assert all(torch.isfinite(p).all() for p in result.model.parameters())


def test_capacity_controls_are_refused_in_one_line_where_they_cannot_apply():
    with pytest.raises(InvalidParameterError, match="capacity_of: a capacity control is hard"):
        build("mt-crl", conv_backbone, TASKS, capacity_of="mt-crl")
    with pytest.raises(InvalidParameterError, match="capacity_of: expected one of core-mtl"):
        build("ew", conv_backbone, TASKS, capacity_of="rep-mtl")
    with pytest.raises(InvalidParameterError, match="heads_on: applies to method 'core-mtl'"):
        build("ew", conv_backbone, TASKS, heads_on="both")
