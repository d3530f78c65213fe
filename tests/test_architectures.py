"""Baseline architectures: Forward contract, gradient flow, MTAN masks, Rep-MTL and MT-CRL terms."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from coremtl.architectures import (
    MTAN,
    MTCRL,
    MTCRLRegularizer,
    RepMTLRegularizer,
    SharedBottom,
    SingleTaskModels,
    mlp,
    split_stage,
)
from coremtl.architectures.mtcrl import module_decorrelation
from coremtl.architectures.repmtl import cross_task_saliency_alignment, task_saliencies
from coremtl.balancers import make_balancer
from coremtl.forward import Forward
from scm.validation import InvalidParameterError

OUTPUTS = {"a": 1, "b": 3}
BATCH = 6


def conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU())


def vector_heads(width: int) -> dict[str, nn.Module]:
    return {t: nn.Linear(width, k) for t, k in OUTPUTS.items()}


def map_heads(channels: int) -> dict[str, nn.Module]:
    return {t: nn.Conv2d(channels, k, 1) for t, k in OUTPUTS.items()}


def build(kind: str, maps: bool) -> nn.Module:
    torch.manual_seed(0)
    if kind == "shared_bottom":
        trunk = nn.Sequential(conv(3, 8), conv(8, 6)) if maps else mlp([5, 16, 6])
        return SharedBottom(trunk, map_heads(6) if maps else vector_heads(6))
    if kind == "single_task":
        return SingleTaskModels.from_factories(
            list(OUTPUTS),
            (lambda: conv(3, 4)) if maps else (lambda: mlp([5, 8, 4])),
            lambda t: nn.Conv2d(4, OUTPUTS[t], 1) if maps else nn.Linear(4, OUTPUTS[t]),
        )
    if kind == "mtan":
        if maps:
            stages = [
                nn.Sequential(conv(3, 8), conv(8, 8)),
                nn.Sequential(nn.MaxPool2d(2), conv(8, 12), conv(12, 10)),
            ]
            return MTAN(stages, [(8, 8), (12, 10)], map_heads(10), maps=True)
        stages = [
            nn.Sequential(nn.Linear(5, 12), nn.ReLU(), mlp([12, 10])),
            nn.Sequential(nn.Linear(10, 12), nn.ReLU(), mlp([12, 8])),
        ]
        return MTAN(stages, [(12, 10), (12, 8)], vector_heads(8))
    if kind == "mtcrl":
        if maps:
            return MTCRL(conv(3, 8), [conv(8, 4) for _ in range(3)], map_heads(12))
        return MTCRL(mlp([5, 16]), [mlp([16, 4]) for _ in range(3)], vector_heads(12))
    raise AssertionError(kind)


def inputs(maps: bool) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    shape = (BATCH, 3, 8, 8) if maps else (BATCH, 5)
    return torch.randn(shape, generator=generator)


def squared_losses(predictions, batch=None) -> dict[str, torch.Tensor]:
    return {t: p.pow(2).mean() for t, p in predictions.items()}


KINDS = ["shared_bottom", "single_task", "mtan", "mtcrl"]
CASES = [(kind, maps) for kind in KINDS for maps in (False, True)]
CASE_IDS = [f"{kind}-{'maps' if maps else 'vectors'}" for kind, maps in CASES]


@pytest.mark.parametrize(("kind", "maps"), CASES, ids=CASE_IDS)
def test_forward_returns_one_prediction_per_task_with_the_head_shapes(kind, maps):
    model = build(kind, maps)
    out = model(inputs(maps))
    assert isinstance(out, Forward)
    assert list(out.predictions) == list(OUTPUTS) == model.task_names
    for task, prediction in out.predictions.items():
        assert prediction.shape[:2] == (BATCH, OUTPUTS[task])
        assert prediction.ndim == (4 if maps else 2)
    assert out.shared.shape[0] == BATCH
    assert out.z_s is None and out.z_r is None


@pytest.mark.parametrize(("kind", "maps"), CASES, ids=CASE_IDS)
def test_every_parameter_receives_a_finite_gradient(kind, maps):
    model = build(kind, maps)
    sum(squared_losses(model(inputs(maps)).predictions).values()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert any(p.grad.abs().sum() > 0 for p in model.shared_parameters())


@pytest.mark.parametrize(("kind", "maps"), CASES, ids=CASE_IDS)
def test_shared_parameters_are_exactly_those_upstream_of_the_shared_representation(kind, maps):
    model = build(kind, maps)
    out = model(inputs(maps))
    params = list(model.parameters())
    grads = torch.autograd.grad(out.shared.sum(), params, allow_unused=True)
    upstream = {id(p) for p, g in zip(params, grads, strict=True) if g is not None}
    assert upstream == {id(p) for p in model.shared_parameters()}


@pytest.mark.parametrize(("kind", "maps"), CASES, ids=CASE_IDS)
def test_task_losses_reach_shared_parameters_only_through_the_shared_representation(kind, maps):
    model = build(kind, maps)
    out = model(inputs(maps))
    shared_params = list(model.shared_parameters())
    for loss in squared_losses(out.predictions).values():
        direct = torch.autograd.grad(loss, shared_params, retain_graph=True, allow_unused=True)
        (through_shared,) = torch.autograd.grad(loss, out.shared, retain_graph=True)
        chained = torch.autograd.grad(
            out.shared, shared_params, through_shared, retain_graph=True, allow_unused=True
        )
        for d, c in zip(direct, chained, strict=True):
            if d is None:
                assert c is None or not c.any()
            else:
                torch.testing.assert_close(d, c)


@pytest.mark.parametrize(("kind", "maps"), CASES, ids=CASE_IDS)
def test_a_gradient_aggregator_runs_on_the_model(kind, maps):
    model = build(kind, maps)
    out = model(inputs(maps))
    balancer = make_balancer("upgrad", list(OUTPUTS))
    balancer.backward(squared_losses(out.predictions), out.shared, list(model.shared_parameters()))
    for p in model.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all()


# ---------------------------------------------------------------- single task


@pytest.mark.parametrize("maps", [False, True], ids=["vectors", "maps"])
def test_single_task_models_share_nothing(maps):
    model = build("single_task", maps)
    out = model(inputs(maps))
    squared_losses(out.predictions)["a"].backward()
    for p in [*model.trunks["a"].parameters(), *model.heads["a"].parameters()]:
        assert p.grad is not None
    for p in model.heads["b"].parameters():
        assert p.grad is None
    for p in model.trunks["b"].parameters():
        assert p.grad is None or not p.grad.any()


def test_single_task_models_reject_a_module_used_by_two_tasks():
    trunk = mlp([5, 4])
    with pytest.raises(InvalidParameterError, match="must not share any parameter"):
        SingleTaskModels({"a": trunk, "b": trunk}, vector_heads(4))


def test_single_task_models_need_one_trunk_per_head():
    with pytest.raises(InvalidParameterError, match=r"trunks: expected one trunk per head"):
        SingleTaskModels({"a": mlp([5, 4])}, vector_heads(4))


# ---------------------------------------------------------------- MTAN


@pytest.mark.parametrize("maps", [False, True], ids=["vectors", "maps"])
def test_mtan_attention_masks_lie_strictly_between_zero_and_one(maps):
    model = build("mtan", maps)
    out = model(inputs(maps))
    masks = {k: v for k, v in out.extras.items() if k.startswith("attention/")}
    assert set(masks) == {f"attention/{t}/{j}" for t in OUTPUTS for j in range(2)}
    for mask in masks.values():
        assert (mask > 0).all() and (mask < 1).all()


def test_mtan_attended_features_are_the_mask_times_the_stage_output():
    model = build("mtan", False).eval()
    x = inputs(False)
    out = model(x)
    body, block = split_stage(model.stages[0])
    p1 = block(body(x))
    head_input = out.extras["attention/a/1"] * model.stages[1][-1](model.stages[1][:-1](p1))
    torch.testing.assert_close(out.predictions["a"], model.heads["a"](head_input))


def test_mtan_needs_one_channel_pair_per_stage():
    stage = nn.Sequential(nn.Linear(5, 4), nn.ReLU())
    with pytest.raises(InvalidParameterError, match=r"stage_channels: expected one \(u, p\) pair"):
        MTAN([stage], [(4, 4), (4, 4)], vector_heads(4))


def test_mtan_stages_must_have_a_body_and_a_block():
    with pytest.raises(InvalidParameterError, match="at least two modules"):
        split_stage(nn.Sequential(nn.Linear(5, 4)))


# ---------------------------------------------------------------- Rep-MTL


def disjoint_model_and_batch(shared_heads: bool):
    """Two scalar tasks on a 4-d shared vector: heads on disjoint or on the same coordinates."""
    torch.manual_seed(3)
    trunk = mlp([5, 4])
    if shared_heads:
        first = second = torch.ones(1, 4)
    else:
        first = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
        second = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    heads = {"a": nn.Linear(4, 1, bias=False), "b": nn.Linear(4, 1, bias=False)}
    with torch.no_grad():
        heads["a"].weight.copy_(first)
        heads["b"].weight.copy_(second)
    model = SharedBottom(trunk, heads)
    batch = {"y_a": torch.randn(BATCH, 1), "y_b": torch.randn(BATCH, 1)}
    return model, batch


def mse_losses(predictions, batch):
    return {t: F.mse_loss(p, batch[f"y_{t}"]) for t, p in predictions.items()}


def test_repmtl_saliency_entropy_is_zero_when_tasks_use_disjoint_features():
    model, batch = disjoint_model_and_batch(shared_heads=False)
    out = model(inputs(False))
    terms = RepMTLRegularizer(tsr_weight=1.0, csa_weight=0.0).terms(
        model, batch, out, 0, mse_losses
    )
    assert terms["repmtl_tsr"].item() == 0.0


def test_repmtl_saliency_entropy_is_maximal_when_two_tasks_are_identical():
    model, batch = disjoint_model_and_batch(shared_heads=True)
    batch["y_b"] = batch["y_a"]
    out = model(inputs(False))
    terms = RepMTLRegularizer(tsr_weight=1.0, csa_weight=0.0).terms(
        model, batch, out, 0, mse_losses
    )
    torch.testing.assert_close(terms["repmtl_tsr"], torch.tensor(1.0))


def test_repmtl_alignment_equals_log_batch_when_saliency_ignores_the_sample():
    model, batch = disjoint_model_and_batch(shared_heads=False)
    out = model(inputs(False))
    saliencies = task_saliencies(mse_losses(out.predictions, batch), out.shared)
    loss = cross_task_saliency_alignment(saliencies, temperature=0.5)
    torch.testing.assert_close(loss, torch.tensor(math.log(BATCH)))


@pytest.mark.parametrize("maps", [False, True], ids=["vectors", "maps"])
def test_repmtl_terms_are_finite_and_train_the_trunk(maps):
    model = build("shared_bottom", maps)
    out = model(inputs(maps))
    terms = RepMTLRegularizer().terms(model, {}, out, 0, squared_losses)
    assert set(terms) == {"repmtl_tsr", "repmtl_csa"}
    assert all(torch.isfinite(t) for t in terms.values())
    total = RepMTLRegularizer().regularizer(model, {}, out, squared_losses)
    total.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.trunk.parameters())


def test_repmtl_rejects_a_non_positive_temperature():
    with pytest.raises(InvalidParameterError, match="temperature: expected a positive number"):
        RepMTLRegularizer(temperature=0.0)


# ---------------------------------------------------------------- MT-CRL


def test_mtcrl_decorrelation_is_zero_for_uncorrelated_modules():
    first = torch.tensor([[1.0], [-1.0], [1.0], [-1.0]])
    second = torch.tensor([[1.0], [1.0], [-1.0], [-1.0]])
    assert module_decorrelation(torch.cat([first, second], dim=1), [1, 1]).item() == 0.0


def test_mtcrl_decorrelation_is_one_for_identical_one_dimensional_modules():
    first = torch.randn(16, 1)
    value = module_decorrelation(torch.cat([first, 3.0 * first + 1.0], dim=1), [1, 1])
    torch.testing.assert_close(value, torch.tensor(1.0))


def mtcrl_batch(environments: list[int], targets: torch.Tensor):
    return {
        "environment": torch.tensor(environments),
        "y_a": targets[:, :1],
        "y_b": targets[:, 1:],
    }


def mtcrl_losses(predictions, batch):
    return {
        "a": F.mse_loss(predictions["a"], batch["y_a"]),
        "b": F.mse_loss(predictions["b"], batch["y_b"]),
    }


def small_mtcrl() -> MTCRL:
    torch.manual_seed(5)
    heads = {"a": nn.Linear(6, 1), "b": nn.Linear(6, 3)}
    return MTCRL(mlp([5, 8]), [mlp([8, 2]) for _ in range(3)], heads)


def invariance(model, x, batch) -> torch.Tensor:
    out = model(x)
    regularizer = MTCRLRegularizer(decorrelation_weight=0.0, sparsity_weight=0.0)
    return regularizer.terms(model, batch, out, 0, mtcrl_losses)["mtcrl_invariance"]


def test_mtcrl_invariance_is_zero_with_one_environment():
    model = small_mtcrl()
    x = inputs(False)
    batch = mtcrl_batch([0] * BATCH, torch.randn(BATCH, 4))
    assert invariance(model, x, batch).item() == 0.0


def test_mtcrl_invariance_is_zero_when_environments_hold_the_same_samples():
    model = small_mtcrl()
    x = inputs(False)
    targets = torch.randn(BATCH, 4)
    batch = mtcrl_batch([0] * BATCH + [1] * BATCH, torch.cat([targets, targets]))
    value = invariance(model, torch.cat([x, x]), batch)
    assert value.item() == pytest.approx(0.0, abs=1e-12)


def test_mtcrl_invariance_is_positive_and_trains_the_model_when_environments_differ():
    model = small_mtcrl()
    x = inputs(False)
    targets = torch.randn(BATCH, 4)
    targets[BATCH // 2 :] += 5.0
    batch = mtcrl_batch([0] * (BATCH // 2) + [1] * (BATCH - BATCH // 2), targets)
    value = invariance(model, x, batch)
    assert value.item() > 0
    value.backward()
    assert model.routing_logits.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.trunk.parameters())


@pytest.mark.parametrize("maps", [False, True], ids=["vectors", "maps"])
def test_mtcrl_routing_weights_lie_strictly_between_zero_and_one(maps):
    out = build("mtcrl", maps)(inputs(maps))
    routing = out.extras["routing"]
    assert routing.shape == (len(OUTPUTS), 3)
    assert (routing > 0).all() and (routing < 1).all()
    assert out.extras["modules"].shape == (BATCH, 12)


def test_mtcrl_regularizer_names_the_missing_environment_labels():
    model = small_mtcrl()
    out = model(inputs(False))
    with pytest.raises(InvalidParameterError, match="environment labels under 'environment'"):
        MTCRLRegularizer().terms(model, {"y_a": torch.zeros(1)}, out, 0, mtcrl_losses)


def test_mtcrl_needs_at_least_one_module():
    with pytest.raises(InvalidParameterError, match="modules: expected at least one module"):
        MTCRL(mlp([5, 8]), [], vector_heads(2))


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"decorrelation_weight": -1.0}, "decorrelation_weight"),
        ({"invariance_weight": float("nan")}, "invariance_weight"),
        ({"sparsity_weight": -0.1}, "sparsity_weight"),
    ],
)
def test_mtcrl_rejects_negative_weights(kwargs, pattern):
    with pytest.raises(InvalidParameterError, match=f"{pattern}: expected a non-negative number"):
        MTCRLRegularizer(**kwargs)


# ---------------------------------------------------------------- building blocks


@pytest.mark.parametrize("widths", [[5], [5, 0], [5, 2.5]])
def test_mlp_rejects_invalid_widths(widths):
    with pytest.raises(InvalidParameterError, match="widths: expected at least two positive"):
        mlp(widths)


def test_models_need_at_least_one_head():
    with pytest.raises(InvalidParameterError, match="heads: expected at least one task head"):
        SharedBottom(mlp([5, 4]), {})
