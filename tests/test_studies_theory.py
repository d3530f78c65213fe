"""Studies 4, 5 and 7 in tiny settings: what each must show."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from experiments.synthetic import study4_balancers, study5_cka, study7_swap


@pytest.fixture(scope="module")
def swap_result():
    config = replace(study7_swap.CONFIGS["smoke"], batch=128, psis=(0.4,), variances=(0.25,))
    return study7_swap.STUDY.run(config, seed=0)


def test_swap_gradient_measured_by_autograd_equals_the_derived_one(swap_result):
    rows = swap_result["measurements"]["rows"]
    assert rows
    assert all(row["agrees_exactly"] for row in rows)


def test_swap_study_scores_every_registered_prediction_and_fails_the_pull_claim(swap_result):
    assert [o["id"] for o in swap_result["outcomes"]] == ["P1", "P2", "P3", "P4"]
    assert all(o["held"] for o in swap_result["outcomes"])
    assert swap_result["verdict"] == "fails"
    assert (
        swap_result["registration"]["registered_at"]
        <= (swap_result["registration"]["measurement_started_at"])
    )


def test_swap_derivation_tied_equals_task_and_feature_level_is_zero(swap_result):
    derived = swap_result["measurements"]["derived"]
    assert derived["tied"]["equals_task_gradient"]
    assert derived["feature"]["is_zero"]
    assert not derived["input"]["equals_task_gradient"]


@pytest.mark.parametrize("psi", [0.2, 0.7, 1.3])
def test_input_level_swap_has_zero_expected_gradient_at_zero_residual_mean(psi):
    value = study7_swap.expected_gradient("input", psi, 0.8, 0.3, 1.0, 0.0, 0.5, 0.1)
    assert value == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("psi", [0.2, 0.7, 1.3])
def test_task_gradient_matches_theory_partial_derivative(psi):
    w, beta, v = 0.8, 1.0, 0.5
    expected = 2 * w * math.sin(psi) * (beta - math.cos(psi) * w + math.cos(psi) * w * v)
    value = study7_swap.expected_gradient("task", psi, w, 0.0, beta, 0.0, v, 0.1)
    assert value == pytest.approx(expected, rel=1e-12)


@pytest.fixture(scope="module")
def balancer_result():
    config = replace(study4_balancers.CONFIGS["smoke"], variances=(0.0, 0.3), joint_steps=10)
    return study4_balancers.STUDY.run(config, seed=0)


def test_every_balancer_ends_at_the_same_heads_at_fixed_psi(balancer_result):
    heads = balancer_result["measurements"]["heads"]
    assert {row["balancer"] for row in heads} == {"ew", "pcgrad", "mgda"}
    assert all(row["converged"] and row["agrees_with_closed_form"] for row in heads)
    for seed in {row["seed"] for row in heads}:
        rows = [row for row in heads if row["seed"] == seed]
        reference = np.array(rows[0]["least_squares_weights"])
        for row in rows:
            assert np.allclose(row["least_squares_weights"], reference)
            assert np.all(
                np.abs(np.array(row["weights"]) - reference) <= np.array(row["radius"]) + 1e-5
            )


def test_profile_drift_stays_within_the_eta_t_bound(balancer_result):
    assert balancer_result["summary"]["profile_all_hold"]
    assert balancer_result["verdict"] == "holds"
    flat = [row for row in balancer_result["measurements"]["profile"] if row["v"] == 0.0]
    assert flat and all(row["bound"] == 0.0 for row in flat)
    assert all(row["drift"] <= row["rounding_allowance"] for row in flat)


def test_profile_derivative_maximum_matches_the_scalar_formula():
    config = study4_balancers.CONFIGS["smoke"]
    v = 0.3
    maximum = study4_balancers.profile_derivative_max(config, v)
    psi = np.linspace(0, math.pi / 2, 2001)
    c, s = np.cos(psi), np.sin(psi)
    coarse = np.max(2 * v * s * c / (c**2 + v * s**2) ** 2)
    assert maximum[0] == pytest.approx(config.betas[0] ** 2 * coarse, rel=1e-3)


def test_cka_alone_is_blind_at_isotropic_residuals_and_the_task_loss_anchors():
    config = replace(study5_cka.CONFIGS["smoke"], steps=30)
    result = study5_cka.STUDY.run(config, seed=0)
    drift = result["summary"]["cka_alone_drift"]
    assert drift["1.0"]["mean"] < drift["0.25"]["mean"]
    rows = result["measurements"]["rows"]
    task_rows = [row for row in rows if "task" in row["objective"] and row["v"] == 1.0]
    assert task_rows
    assert all(row["final_psi"] < row["psi_start"] for row in task_rows)
    assert result["verdict"] == "holds only as stated here"
