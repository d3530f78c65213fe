"""The Jacobian balancers on degenerate Jacobians: a task without a gradient (zero row), no
gradient at all (all-zero), a non-finite gradient; and task names given as a string."""

from __future__ import annotations

import warnings

import pytest
import torch
from torchjd import aggregation

from coremtl.balancers import make_balancer
from scm.validation import InvalidParameterError, NonFiniteError

GUARDED = ("cagrad", "nashmtl", "imtl", "mgda", "upgrad", "pcgrad")


def backward(name: str, rows: list[list[float]]) -> tuple[torch.Tensor, dict]:
    """``balancer.backward`` on losses ``L_i = <g_i, theta>`` of one shared parameter vector,
    so the Jacobian is exactly ``rows``; returns ``theta.grad`` and the weights."""
    theta = torch.nn.Parameter(torch.zeros(len(rows[0])))
    shared = theta * 1.0
    jacobian = torch.tensor(rows)
    losses = {f"t{i}": (row * shared).sum() for i, row in enumerate(jacobian)}
    balancer = make_balancer(name, list(losses))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        weights = balancer.backward(losses, shared, [theta])
    return theta.grad, weights


@pytest.mark.parametrize("c", [0.4, 0.8])
def test_cagrad_moves_along_the_other_gradient_when_one_task_has_none(c):
    """On J = [[1, 2], [0, 0]] Algorithm 1's update is g_0 + c ||g_0|| g_1 / ||g_1|| =
    (1 + c)/2 (1, 2); torchjd 0.18's CAGrad gives (0, 0) there."""
    jacobian = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    ours = make_balancer("cagrad", ["a", "b"], c=c).method(jacobian)
    assert torch.allclose(ours, (1 + c) / 2 * jacobian[0], atol=1e-5)
    assert torch.equal(aggregation.CAGrad(c)(jacobian), torch.zeros(2))
    update, weights = backward("cagrad", [[1.0, 2.0], [0.0, 0.0]])
    assert torch.allclose(update, torch.tensor([1.0, 2.0]) * 0.7, atol=1e-5)
    assert weights["t1"] == pytest.approx(0.5)


def test_cagrad_without_zero_rows_is_torchjds():
    generator = torch.Generator().manual_seed(0)
    jacobian = torch.randn(3, 5, generator=generator)
    ours = make_balancer("cagrad", ["a", "b", "c"]).method(jacobian)
    assert torch.allclose(ours, aggregation.CAGrad(0.4)(jacobian), rtol=0, atol=0)


@pytest.mark.parametrize("name", GUARDED)
def test_an_all_zero_jacobian_gives_no_update_and_no_error(name):
    update, weights = backward(name, [[0.0, 0.0], [0.0, 0.0]])
    assert update is None or torch.equal(update, torch.zeros(2))
    assert weights == {"t0": 0.0, "t1": 0.0}


@pytest.mark.parametrize("name", GUARDED)
def test_a_non_finite_gradient_is_named_with_its_task(name):
    with pytest.raises(NonFiniteError, match=rf"balancer '{name}': .*\['t1'\].*NaN or infinity"):
        backward(name, [[1.0, 2.0], [float("nan"), 0.0]])


def test_task_names_given_as_one_string_are_refused():
    with pytest.raises(InvalidParameterError, match=r"task_names: expected a list .* str 'ab'"):
        make_balancer("ew", "ab")
    assert make_balancer("ew", ["ab"]).task_names == ["ab"]
