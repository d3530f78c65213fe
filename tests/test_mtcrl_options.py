"""MT-CRL's ablations through ``coremtl.build(..., mtcrl=MTCRLOptions(...))``: each switches off
one ingredient and nothing else, and the label says which; bad options are refused in one line."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import coremtl
from coremtl.architectures.mtcrl import MTCRLOptions
from coremtl.tasks import Task
from scm.validation import InvalidParameterError

TASKS = [Task("label", "classification", 3), Task("flag", "classification", 1)]


def backbone() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU())


def batch(n: int = 8) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return {
        "x": torch.rand(n, 3, 8, 8, generator=generator),
        "label": torch.randint(0, 3, (n,), generator=generator),
        "flag": torch.randint(0, 2, (n,), generator=generator),
        "environment": torch.arange(n) % 2,
    }


def terms_of(preset, data) -> dict[str, torch.Tensor]:
    model = preset.model.train()
    forward = model(data["x"])

    def losses(predictions, values):
        return {t: predictions[t].square().mean() for t in predictions}

    (source,) = preset.term_sources
    return source.source.terms(model, data, forward, 0, task_losses_fn=losses)


def build(options: MTCRLOptions | None = None, **kwargs):
    data = batch()
    return coremtl.build("mt-crl", backbone(), TASKS, data["x"], 2, mtcrl=options, **kwargs)


def test_the_default_is_four_modules_with_sampled_gates_and_no_invariance_without_environments():
    preset = build()
    assert len(preset.model.disentangled) == 4 and preset.model.gates == "binary"
    assert set(terms_of(preset, batch())) == {"mtcrl_decorrelation", "mtcrl_sparsity"}
    assert preset.label == "mt-crl (no invariance)"
    with_environments = build(environment_key="environment")
    assert "mtcrl_invariance" in terms_of(with_environments, batch())
    assert with_environments.label == "mt-crl"


@pytest.mark.parametrize(
    ("options", "terms", "label"),
    [
        (MTCRLOptions(decorrelation=0), {"mtcrl_sparsity"}, "no decorrelation"),
        (MTCRLOptions(sparsity=0), {"mtcrl_decorrelation"}, "no sparsity"),
        (MTCRLOptions(routing="none"), {"mtcrl_decorrelation"}, "no routing"),
        (MTCRLOptions(gates="soft"), {"mtcrl_decorrelation", "mtcrl_sparsity"}, "soft gates"),
    ],
)
def test_each_ablation_removes_its_term_and_says_so(options, terms, label):
    preset = build(options)
    assert set(terms_of(preset, batch())) == terms
    assert preset.label == f"mt-crl (no invariance, {label})"


def test_without_routing_every_gate_is_one_and_there_is_no_routing_parameter():
    preset = build(MTCRLOptions(routing="none"))
    model = preset.model.train()
    assert model.routing_logits is None
    forward = model(batch()["x"])
    assert torch.equal(forward.extras["routing"], torch.ones(2, 4))
    plain = torch.cat([module(model.trunk(batch()["x"])) for module in model.disentangled], 1)
    torch.testing.assert_close(forward.shared, plain)


def test_one_module_is_allowed_its_decorrelation_vanishes_and_it_keeps_the_width():
    preset = build(MTCRLOptions(modules=1))
    assert len(preset.model.disentangled) == 1
    forward = preset.model.train()(batch()["x"])
    assert forward.shared.shape[1] == 8
    assert terms_of(preset, batch())["mtcrl_decorrelation"].item() == 0.0
    assert preset.label == "mt-crl (no invariance, one module)"
    result = coremtl.train(
        "mt-crl", backbone(), TASKS, batch(), epochs=1, batch_size=4, mtcrl=MTCRLOptions(modules=1)
    )
    assert all(torch.isfinite(p).all() for p in result.model.parameters())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"modules": 0}, "mtcrl.modules: expected a positive integer"),
        ({"sparsity": -0.1}, "mtcrl.sparsity: expected a non-negative number"),
        ({"decorrelation": float("nan")}, "mtcrl.decorrelation: expected a non-negative number"),
        ({"routing": "fixed"}, "mtcrl.routing: expected one of"),
        ({"gates": "hard"}, "mtcrl.gates: expected one of"),
    ],
)
def test_bad_mtcrl_options_are_refused_in_one_line(kwargs, message):
    with pytest.raises(InvalidParameterError, match=message):
        MTCRLOptions(**kwargs)


def test_mtcrl_options_given_to_another_method_are_refused_in_one_line():
    data = batch()
    with pytest.raises(InvalidParameterError, match="mtcrl: applies to method 'mt-crl'"):
        coremtl.build("ew", backbone(), TASKS, data["x"], 2, mtcrl=MTCRLOptions(modules=2))
    with pytest.raises(InvalidParameterError, match=r"mtcrl: expected coremtl\.architectures"):
        coremtl.build("mt-crl", backbone(), TASKS, data["x"], 2, mtcrl={"modules": 2})
