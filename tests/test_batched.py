"""Batched training (coremtl.batched) against the per-model loop built from the library's pieces."""

from __future__ import annotations

import pytest
import torch

from coremtl.balancers import make_balancer
from coremtl.batched import Settings, StackedAngle, StackedMLP, TermWeights, draws, loop_reference
from coremtl.batched import train as batched_train
from coremtl.batched.balancing import mgda_weights, pcgrad_weights
from coremtl.batched.draws import random_cycles
from coremtl.batched.terms import conditional_cka, debiased_cka, label_complements
from coremtl.cka import conditional_linear_cka, linear_cka
from coremtl.objective import CoreMTLObjective
from scm.validation import InvalidParameterError

MODELS, N, D, K = 3, 24, 4, 2


def data(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(MODELS, N, D, generator=generator, dtype=torch.float64)
    y = torch.tanh(x[..., :K]) + 0.1 * torch.randn(MODELS, N, K, generator=generator).double()
    return x, y


def mlp_models(seed: int = 1) -> StackedMLP:
    generator = torch.Generator().manual_seed(seed)
    return StackedMLP(MODELS, D, (8, 8), 2, K, (8,), generator, torch.float64)


def every_step(cka: float = 1.0, cfa: float = 1.0, reconstruction: float = 1.0) -> CoreMTLObjective:
    """CORE-MTL's terms as the batched step computes them: no warm-up, CFA at every step."""
    return CoreMTLObjective(
        cka_weight=cka,
        cka_warmup_steps=0,
        cfa_weight=cfa,
        cfa_probability=1.0,
        reconstruction_weight=reconstruction,
    )


CORE = TermWeights.per_model([every_step(cka, 0.5, 0.3) for cka in (1.0, 0.0, 2.0)])
CASES = [
    ("ew", "gd", TermWeights(), None),
    ("pcgrad", "gd", TermWeights(), None),
    ("mgda", "adamw", TermWeights(), None),
    ("ew", "gd", CORE, None),
    ("ew", "adamw", CORE, 12),
    ("pcgrad", "adamw", CORE, 12),
    (("mgda", "ew", "pcgrad"), "adamw", CORE, None),
    ("rlw", "gd", TermWeights(), None),
    ("rlw", "adamw", CORE, 12),
    ("imtl", "gd", TermWeights(), None),
    ("imtl", "adamw", CORE, None),
    ("alignedmtl", "gd", TermWeights(), None),
    ("alignedmtl", "adamw", CORE, 12),
    ("upgrad", "gd", TermWeights(), None),
    ("upgrad", "adamw", CORE, 12),
    ("dualproj", "adamw", CORE, None),
    (("rlw", "upgrad", "imtl"), "adamw", CORE, None),
    (("alignedmtl", "rlw", "ew"), "gd", CORE, 12),
]


@pytest.mark.parametrize(("balancer", "optimizer", "weights", "batch"), CASES)
def test_batched_mlps_equal_the_per_model_loop(balancer, optimizer, weights, batch):
    x, y = data()
    stacked = mlp_models()
    modules = [stacked.module(m) for m in range(MODELS)]
    settings = Settings(
        steps=15, lr=0.05, optimizer=optimizer, weight_decay=0.01, balancer=balancer,
        batch_size=batch,
    )  # fmt: skip
    random = draws(settings, MODELS, N, K, 3)
    before = stacked.module(0).state_dict()
    batched_train(stacked, x, y, settings, weights, random)
    loop_reference(modules, x, y, settings, weights, random)
    moved = 0.0
    for m, module in enumerate(modules):
        expected = module.state_dict()
        for name, value in stacked.module(m).state_dict().items():
            torch.testing.assert_close(value, expected[name], rtol=1e-9, atol=1e-11)
            if m == 0:
                moved = max(moved, float((value - before[name]).abs().max()))
    assert moved > 1e-3


def flat_state(modules) -> torch.Tensor:
    return torch.cat([p.flatten() for m in modules for p in m.state_dict().values()])


@pytest.mark.filterwarnings("ignore:Solution may be inaccurate")
@pytest.mark.parametrize(("optimizer", "weights"), [("gd", TermWeights()), ("adamw", CORE)])
def test_batched_cagrad_is_within_the_library_solver_noise(optimizer, weights, monkeypatch):
    """torchjd's CAGrad stops Clarabel at a duality gap of 1e-8, which leaves its weights about
    1e-4 off the optimum that the batched solver computes exactly: the batched run is closer to the
    library run with Clarabel's tolerances tightened (1e-14) than the library's default run is."""
    import cvxpy

    x, y = data()
    stacked = mlp_models()
    default = [stacked.module(m) for m in range(MODELS)]
    tightened = [stacked.module(m) for m in range(MODELS)]
    settings = Settings(
        steps=15, lr=0.05, optimizer=optimizer, weight_decay=0.01, balancer="cagrad"
    )
    random = draws(settings, MODELS, N, K, 3)
    start = flat_state(default)
    batched_train(stacked, x, y, settings, weights, random)
    loop_reference(default, x, y, settings, weights, random)
    solve = cvxpy.Problem.solve

    def tight(problem, *args, **options):
        options.update(tol_gap_abs=1e-14, tol_gap_rel=1e-14, tol_feas=1e-14, max_iter=500)
        return solve(problem, *args, **options)

    monkeypatch.setattr(cvxpy.Problem, "solve", tight)
    loop_reference(tightened, x, y, settings, weights, random)
    ours = flat_state([stacked.module(m) for m in range(MODELS)])
    reference = flat_state(tightened)
    library_noise = float((flat_state(default) - reference).abs().max())
    assert float((ours - reference).abs().max()) < library_noise
    assert float((ours - start).abs().max()) > 1e3 * library_noise


def angle_module(stacked: StackedAngle, m: int, mixing: torch.Tensor):
    """The library-side angle model (experiments.synthetic.angle_model) of model ``m``."""
    from coremtl.representation import DualStreamModel
    from experiments.synthetic.angle_model import AngleEncoder, TiedDecoder, identity_split

    encoder = AngleEncoder(mixing.numpy(), float(stacked.params["psi"][m].detach()))
    heads = {}
    for t in range(stacked.num_tasks):
        head = torch.nn.Linear(stacked.k, 1).double()
        with torch.no_grad():
            head.weight.copy_(stacked.params["head_w"][m, :, t][None])
            head.bias.fill_(float(stacked.params["head_b"][m, 0, t].detach()))
        heads[f"t{t}"] = head
    return DualStreamModel(encoder, identity_split(stacked.k), heads, TiedDecoder(encoder))


@pytest.mark.parametrize(
    "balancer", ["ew", "pcgrad", "mgda", "rlw", "imtl", "alignedmtl", "upgrad", "dualproj"]
)
def test_batched_angle_models_equal_the_per_model_loop(balancer):
    generator = torch.Generator().manual_seed(5)
    k = 2
    mixing = torch.linalg.qr(torch.randn(2 * k, 2 * k, generator=generator).double())[0]
    z = torch.randn(MODELS, N, 2 * k, generator=generator).double()
    z[..., k:] *= 0.3
    x = z @ mixing.T
    y = (
        z[..., :k] @ torch.tensor([[1.0, -0.5], [0.4, 0.8]]).double()
        + 0.05 * torch.randn(MODELS, N, K, generator=generator).double()
    )
    psi = torch.tensor([0.3, 0.7, 1.1]).double()
    head_w = 0.5 * torch.randn(MODELS, k, K, generator=generator).double()
    stacked = StackedAngle(mixing, psi, head_w, torch.zeros(3, K, dtype=torch.float64))
    modules = [angle_module(stacked, m, mixing) for m in range(MODELS)]
    settings = Settings(steps=20, lr=0.1, balancer=balancer)
    weights = TermWeights.of(every_step())
    random = draws(settings, MODELS, N, K, 2)
    batched_train(stacked, x, y, settings, weights, random)
    loop_reference(modules, x, y, settings, weights, random)
    for m, module in enumerate(modules):
        torch.testing.assert_close(stacked.params["psi"][m], module.encoder.psi, rtol=1e-9, atol=0)
        assert abs(float(module.encoder.psi.detach()) - float(psi[m])) > 1e-4


def conditional(cka: float = 1.0) -> CoreMTLObjective:
    objective = every_step(cka, 0.5, 0.3)
    objective.independence = "conditional"
    return objective


@pytest.mark.parametrize("batch", [None, 12])
def test_batched_conditional_cka_training_equals_the_per_model_loop(batch):
    x, y = data()
    stacked = mlp_models()
    modules = [stacked.module(m) for m in range(MODELS)]
    weights = TermWeights.per_model([conditional(), every_step(1.0, 0.5, 0.3), conditional(2.0)])
    settings = Settings(steps=10, lr=0.05, optimizer="adamw", balancer="ew", batch_size=batch)
    random = draws(settings, MODELS, N, K, 3)
    batched_train(stacked, x, y, settings, weights, random)
    loop_reference(modules, x, y, settings, weights, random)
    for m, module in enumerate(modules):
        expected = module.state_dict()
        for name, value in stacked.module(m).state_dict().items():
            torch.testing.assert_close(value, expected[name], rtol=1e-9, atol=1e-11)
    unconditional = mlp_models()
    batched_train(unconditional, x, y, settings, TermWeights.of(every_step(1.0, 0.5, 0.3)), random)
    moved = unconditional.module(0).state_dict()
    assert any(
        float((value - moved[name]).abs().max()) > 1e-6
        for name, value in stacked.module(0).state_dict().items()
    )


def test_batched_conditional_cka_equals_the_library_estimator():
    generator = torch.Generator().manual_seed(0)
    labels = torch.randn(4, 30, 2, generator=generator).double()
    x = labels @ torch.randn(2, 3, generator=generator).double()
    x = x + torch.randn(4, 30, 3, generator=generator).double()
    y = labels[..., :1] + 0.5 * x[..., :2] + torch.randn(4, 30, 2, generator=generator).double()
    expected = torch.stack([conditional_linear_cka(x[m], y[m], labels[m]) for m in range(4)])
    found = conditional_cka(x, y, label_complements(labels))
    torch.testing.assert_close(found, expected, rtol=1e-10, atol=1e-12)
    assert not torch.allclose(found, debiased_cka(x, y), atol=1e-3)


def test_batched_conditional_cka_refuses_labels_it_cannot_partial_out():
    labels = torch.randn(2, 5, 2, dtype=torch.float64)
    with pytest.raises(InvalidParameterError, match=r"^labels: partialling out 2 .* at least 4$"):
        label_complements(labels)
    mixed = torch.randn(2, 12, 2, dtype=torch.float64)
    mixed[1, :, 1] = mixed[1, :, 0]
    with pytest.raises(InvalidParameterError, match=r"^labels: the batched conditional CKA needs"):
        label_complements(mixed)


def test_debiased_cka_equals_the_library_estimator():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(4, 30, 3, generator=generator).double()
    y = x[..., :2] + torch.randn(4, 30, 2, generator=generator).double()
    expected = torch.stack([linear_cka(x[m], y[m]) for m in range(4)])
    torch.testing.assert_close(debiased_cka(x, y), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("name", "tasks"), [("mgda", 3), ("mgda", 2), ("pcgrad", 2)])
def test_batched_pcgrad_and_mgda_weights_equal_torchjd(name, tasks):
    generator = torch.Generator().manual_seed(1)
    jacobian = torch.randn(6, tasks, 5, generator=generator).double()
    jacobian[:, 1] = -0.7 * jacobian[:, 0] + 0.1 * jacobian[:, 1]
    gramian = torch.bmm(jacobian, jacobian.transpose(1, 2))
    if name == "mgda":
        weights = mgda_weights(gramian)
    else:
        weights = pcgrad_weights(gramian, torch.rand(6, 2, 2, generator=generator).argsort(-1))
    for m in range(6):
        parameter = torch.nn.Parameter(torch.zeros(5, dtype=torch.float64))
        feature = 1.0 * parameter
        losses = {f"t{i}": (jacobian[m, i] * feature).sum() for i in range(tasks)}
        make_balancer(name, list(losses)).backward(losses, [feature], [parameter])
        expected = jacobian[m].T @ weights[m]
        torch.testing.assert_close(parameter.grad, expected, rtol=1e-8, atol=1e-12)


def test_pcgrad_weights_remove_conflicts_in_two_tasks():
    g = torch.tensor([[1.0, 0.0], [-1.0, 1.0]]).double()
    gramian = (g @ g.T)[None]
    weights = pcgrad_weights(gramian, torch.tensor([[[0, 1], [0, 1]]]))
    projected_1 = g[0] - (g[0] @ g[1]) / (g[1] @ g[1]) * g[1]
    projected_2 = g[1] - (g[1] @ g[0]) / (g[0] @ g[0]) * g[0]
    torch.testing.assert_close(weights[0] @ g, projected_1 + projected_2)


def test_random_cycles_are_derangements():
    cycles = random_cycles((50,), 7, torch.Generator().manual_seed(0))
    assert not bool((cycles == torch.arange(7)).any())
    assert all(sorted(row.tolist()) == list(range(7)) for row in cycles)
    position, length = 0, 0
    while True:
        position, length = int(cycles[0, position]), length + 1
        if position == 0:
            break
    assert length == 7


def test_bad_settings_are_one_line_errors():
    with pytest.raises(InvalidParameterError, match="balancer: expected one of"):
        Settings(steps=1, lr=0.1, balancer="nash")
    with pytest.raises(InvalidParameterError, match="optimizer: expected one of"):
        Settings(steps=1, lr=0.1, optimizer="sgd-momentum")
    with pytest.raises(InvalidParameterError, match="batch_size: expected"):
        draws(Settings(steps=1, lr=0.1, batch_size=2), 1, 10, 2, 0)


def test_term_weights_are_read_from_the_objectives():
    assert TermWeights.of(every_step(0.2, 0.3, 0.4)).row(0) == (0.2, 0.3, 0.4)
    assert TermWeights.of(None).row(0) == (0.0, 0.0, 0.0)
    per_model = TermWeights.per_model([every_step(0.2, 0.0, 1.0), None])
    assert [per_model.row(m) for m in range(2)] == [(0.2, 0.0, 1.0), (0.0, 0.0, 0.0)]
    assert per_model.active("cka") and not per_model.active("cfa")
    off = CoreMTLObjective(cka_weight=0.0, cfa_weight=0.0, reconstruction_weight=0.5)
    assert TermWeights.of(off).row(0) == (0.0, 0.0, 0.5)
    """a warm-up or a CFA probability of a term that is off is not refused"""
    without = every_step()
    without.independence = "none"
    assert TermWeights.of(without).row(0) == (0.0, 1.0, 1.0)
    assert TermWeights.of(without).conditional == 0.0
    assert TermWeights.of(conditional()).conditional == 1.0
    mixed = TermWeights.per_model([conditional(), every_step(), None])
    assert mixed.conditional.tolist() == [1.0, 0.0, 0.0] and mixed.active("conditional")


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("cka_warmup_steps", 500),
        ("debiased_cka", False),
        ("cfa_probability", 0.5),
        ("cfa_start_step", 3),
        ("cfa_mode", "feature"),
    ],
)
def test_objective_settings_the_batched_step_does_not_compute_are_refused(setting, value):
    objective = every_step()
    setattr(objective, setting, value)
    with pytest.raises(InvalidParameterError, match=rf"^objective\.{setting}: the batched step"):
        TermWeights.of(objective)
    with pytest.raises(InvalidParameterError, match=rf"^objective\.{setting}"):
        TermWeights.per_model([every_step(), objective])
