"""One way to read every built model's representations for probes:
``coremtl.probes.representations(model, x)`` (``Forward.representations()``): "Z" for every
method and what it is, the streams of CORE-MTL, MT-CRL's modules and routing, MTAN's attended
features, the single-task trunks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import coremtl
from coremtl.probes import representations
from coremtl.tasks import Task

TASKS = [Task("label", "classification", 3), Task("flag", "classification", 1)]
BATCH = 5


def backbone() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2)),
        nn.Sequential(nn.Conv2d(8, 12, 3, padding=1), nn.BatchNorm2d(12), nn.ReLU()),
    )


def inputs() -> torch.Tensor:
    return torch.rand(BATCH, 3, 8, 8, generator=torch.Generator().manual_seed(1))


def pooled(maps: torch.Tensor) -> torch.Tensor:
    return maps.mean(dim=(2, 3))


def built(method: str, **options):
    model = coremtl.build(method, backbone(), TASKS, inputs(), 6, **options).model
    return model.train()


def test_every_method_gives_z_as_per_sample_vectors_without_changing_the_model_mode():
    for method in coremtl.METHODS:
        model = built(method)
        found = representations(model, inputs())
        assert found["Z"].shape[0] == BATCH and found["Z"].ndim == 2, method
        assert not found["Z"].requires_grad and model.training, method


@pytest.mark.parametrize("options", [{}, {"capacity_of": "mt-crl"}, {"capacity_of": "mtan"}])
def test_hard_sharing_z_is_what_the_heads_read(options):
    model = built("ew", **options).eval()
    found = representations(model, inputs())
    torch.testing.assert_close(found["Z"], pooled(model.trunk(inputs())))
    assert set(found) == {"Z"}


@pytest.mark.parametrize("heads_on", ["semantic", "both"])
def test_core_mtl_z_is_the_encoder_output_and_its_streams_are_given(heads_on):
    model = built("core-mtl", heads_on=heads_on).eval()
    found = representations(model, inputs())
    features = model.encoder(inputs())
    z_s, z_r = model.split(features)
    torch.testing.assert_close(found["Z"], pooled(features))
    torch.testing.assert_close(found["Z_s"], pooled(z_s))
    torch.testing.assert_close(found["Z_r"], pooled(z_r))


def test_mtcrl_gives_each_module_and_the_routing_matrix():
    model = built("mt-crl").eval()
    found = representations(model, inputs())
    features = model.trunk(inputs())
    outputs = [pooled(module(features)) for module in model.disentangled]
    torch.testing.assert_close(found["Z"], torch.cat(outputs, dim=1))
    for index, output in enumerate(outputs):
        torch.testing.assert_close(found[f"module/{index}"], output)
    torch.testing.assert_close(found["routing"], torch.sigmoid(model.routing_logits))


def test_mtan_z_is_the_last_shared_stage_and_each_task_has_its_attended_features():
    model = built("mtan").eval()
    found = representations(model, inputs())
    torch.testing.assert_close(found["Z"], pooled(nn.Sequential(*model.stages)(inputs())))
    for task in ("label", "flag"):
        assert found[f"attended/{task}"].shape == found["Z"].shape


def test_single_task_z_is_the_task_trunks_side_by_side():
    model = built("single-task").eval()
    found = representations(model, inputs())
    trunks = [pooled(model.trunks[task](inputs())) for task in ("label", "flag")]
    torch.testing.assert_close(found["trunk/label"], trunks[0])
    torch.testing.assert_close(found["Z"], torch.cat(trunks, dim=1))
