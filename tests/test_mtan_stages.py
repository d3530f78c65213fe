"""MTAN through ``coremtl.build`` on backbones of any stage shape: pooling, stride, channel
changes, a global pool or a flatten ending in vectors; what cannot be attended is refused."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import coremtl
from coremtl.tasks import Task
from scm.validation import InvalidParameterError


def conv(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]


STAGES = {
    "max-pool ending": lambda: [
        nn.Sequential(*conv(3, 8), nn.MaxPool2d(2)),
        nn.Sequential(*conv(8, 16), nn.MaxPool2d(2)),
    ],
    "strided convolution": lambda: [
        nn.Sequential(*conv(3, 8, stride=2)),
        nn.Sequential(*conv(8, 16, stride=2)),
    ],
    "channel change in the block": lambda: [
        nn.Sequential(*conv(3, 8), nn.Conv2d(8, 12, 1)),
        nn.Sequential(*conv(12, 16), nn.Conv2d(16, 6, 3, stride=2, padding=1)),
    ],
    "upsampling block": lambda: [
        nn.Sequential(*conv(3, 8, stride=2)),
        nn.Sequential(*conv(8, 8), nn.Upsample(scale_factor=2)),
    ],
    "global pool to vectors": lambda: [
        nn.Sequential(*conv(3, 8, stride=2)),
        nn.Sequential(*conv(8, 16), nn.AdaptiveAvgPool2d(1), nn.Flatten()),
    ],
    "flatten then linear stages": lambda: [
        nn.Sequential(*conv(3, 4, stride=2), nn.MaxPool2d(2)),
        nn.Sequential(nn.Flatten(), nn.Linear(4 * 4 * 4, 10), nn.ReLU()),
        nn.Sequential(nn.Linear(10, 6), nn.ReLU()),
    ],
    "pool to 1x1 maps": lambda: [
        nn.Sequential(*conv(3, 8, stride=2)),
        nn.Sequential(*conv(8, 16), nn.AdaptiveMaxPool2d(1)),
    ],
}
TASKS = [Task("label", "classification", 3), Task("value", "regression", 2)]


def data(n: int = 8) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "x": torch.rand(n, 3, 16, 16, generator=generator),
        "label": torch.randint(0, 3, (n,), generator=generator),
        "value": torch.randn(n, 2, generator=generator),
    }


@pytest.mark.parametrize("family", list(STAGES))
def test_mtan_attends_over_stages_of_any_shape_and_trains(family):
    torch.manual_seed(0)
    backbone = nn.Sequential(*STAGES[family]())
    batch = data()
    preset = coremtl.build("mtan", backbone, TASKS, batch["x"], epochs=2)
    out = preset.model(batch["x"])
    assert out.predictions["label"].shape == (8, 3)
    assert out.predictions["value"].shape == (8, 2)
    stage_outputs, current = [], batch["x"]
    with torch.no_grad():
        for stage in preset.model.stages:
            current = stage(current)
            stage_outputs.append(current)
    for task in ("label", "value"):
        for j, stage_output in enumerate(stage_outputs):
            mask = out.extras[f"attention/{task}/{j}"]
            assert mask.shape == stage_output.shape
            assert (mask > 0).all() and (mask < 1).all()
    result = coremtl.train("mtan", backbone, TASKS, batch, epochs=1, batch_size=4)
    assert all(torch.isfinite(p).all() for p in result.model.parameters())


def test_mtan_refuses_a_stage_that_turns_vectors_into_maps_in_one_line():
    backbone = nn.Sequential(
        nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 64), nn.ReLU()),
        nn.Sequential(nn.Unflatten(1, (4, 4, 4)), nn.Conv2d(4, 4, 3, padding=1)),
    )
    with pytest.raises(InvalidParameterError, match="backbone: MTAN stage 1 turns vectors into"):
        coremtl.build("mtan", backbone, TASKS, data()["x"], epochs=2)


def test_mtan_refuses_a_stage_of_one_module_in_one_line():
    backbone = nn.Sequential(nn.Sequential(*conv(3, 8)), nn.Sequential(nn.MaxPool2d(2)))
    with pytest.raises(InvalidParameterError, match="stages of at least two modules each"):
        coremtl.build("mtan", backbone, TASKS, data()["x"], epochs=2)
