"""CORE-MTL with heads on ``[Z_s; Z_r]`` (``heads_on="both"``), the control that tells whether
reading ``Z_s`` alone matters: the residual stream reaches the predictions, and the method still
trains through every stage."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import coremtl
from coremtl.objective import CoreMTLObjective
from coremtl.tasks import Task
from scm.validation import InvalidParameterError

TASKS = [Task("label", "classification", 3), Task("mask", "dense", 2)]


def backbone() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU())


def data(n: int = 8) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(4)
    return {
        "x": torch.rand(n, 3, 8, 8, generator=generator),
        "label": torch.randint(0, 3, (n,), generator=generator),
        "mask": torch.randint(0, 2, (n, 8, 8), generator=generator),
    }


def residual_rows_move_the_predictions(heads_on: str) -> bool:
    model = coremtl.build("core-mtl", backbone(), TASKS, data()["x"], 6, heads_on=heads_on).model
    model.eval()
    before = model(data()["x"]).predictions
    with torch.no_grad():
        model.split.projection.weight[model.split.semantic_dim :] += 1.0
    after = model(data()["x"]).predictions
    return any(not torch.allclose(before[t], after[t]) for t in before)


def test_only_heads_on_both_streams_see_the_residual_stream():
    assert not residual_rows_move_the_predictions("semantic")
    assert residual_rows_move_the_predictions("both")


def test_heads_on_both_streams_balance_at_their_input_and_train_through_every_stage():
    preset = coremtl.build("core-mtl", backbone(), TASKS, data()["x"], 3, heads_on="both")
    forward = preset.model(data()["x"])
    torch.testing.assert_close(forward.shared, torch.cat([forward.z_s, forward.z_r], dim=1))
    assert preset.label == "core-mtl (heads on Z_s and Z_r)"
    objective = CoreMTLObjective(cfa_probability=1.0)
    result = coremtl.train(
        "core-mtl", backbone(), TASKS, data(), epochs=3, batch_size=4, heads_on="both",
        objective=objective,
    )  # fmt: skip
    last = result.history[-1]["train"]
    assert {"term/cka", "term/cfa"} <= set(last)
    assert all(torch.isfinite(p).all() for p in result.model.parameters())


def test_heads_on_both_streams_refuse_feature_level_cfa_in_one_line():
    with pytest.raises(InvalidParameterError, match="heads_on: feature-level CFA edits Z_r"):
        coremtl.build(
            "core-mtl",
            backbone(),
            TASKS,
            data()["x"],
            6,
            heads_on="both",
            objective=CoreMTLObjective(cfa_mode="feature"),
        )
    with pytest.raises(InvalidParameterError, match="heads_on: expected one of"):
        coremtl.build("core-mtl", backbone(), TASKS, data()["x"], 6, heads_on="residual")


def test_heads_on_both_streams_with_hard_grounding_is_refused_in_one_line():
    import torch
    from torch import nn

    import coremtl
    from scm.validation import InvalidParameterError

    backbone = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU())
    tasks = [coremtl.Task("segmentation", "dense", 3)]
    with pytest.raises(InvalidParameterError, match="heads_on: hard grounding"):
        coremtl.build(
            "core-mtl", backbone, tasks, torch.rand(2, 3, 16, 16), epochs=4,
            heads_on="both", grounding="hard",
        )  # fmt: skip
