"""Study 4, part A: the S3 verdict (converged heads at the closed-form heads) can come out false."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from experiments.synthetic import study4_balancers as study
from experiments.synthetic.study4_balancers import heads

CONFIG = replace(study.CONFIGS["smoke"], samples=256)
V = 0.3


def test_converged_heads_of_every_balancer_agree_with_the_closed_form():
    for name in CONFIG.balancers:
        row = study.fixed_psi_heads(CONFIG, name, V, seed=0)
        assert row["converged"] and row["steps"] <= CONFIG.head_steps, name
        assert max(row["radius"]) <= CONFIG.head_tolerance
        assert row["agrees_with_closed_form"], name


def test_a_run_stopped_before_the_certificate_is_met_does_not_converge():
    row = study.fixed_psi_heads(replace(CONFIG, head_steps=5, head_lr=0.01), "ew", V, seed=0)
    assert row["steps"] == 5
    assert not row["converged"]


def test_heads_fitted_to_other_data_than_the_scm_disagree_with_the_closed_form(monkeypatch):
    original = heads.source_batch

    def scaled_targets(config, v, seed):
        batch = original(config, v, seed)
        return {"x": batch["x"], "y": 1.2 * batch["y"]}

    monkeypatch.setattr(heads, "source_batch", scaled_targets)
    row = study.fixed_psi_heads(CONFIG, "ew", V, seed=0)
    assert row["converged"]
    assert not row["agrees_with_closed_form"]


@pytest.mark.parametrize("margin, expected", [(-0.5, True), (0.5, False)])
def test_the_allowance_is_tolerance_plus_z_standard_errors(margin, expected):
    z = study.head_quantile(CONFIG)
    closed_form = np.array([[0.8, 0.0], [-0.5, 0.0]])
    standard_errors = np.array([[0.01, 0.02], [0.03, 0.01]])
    trained = closed_form + CONFIG.head_tolerance + (z + margin) * standard_errors
    assert study.agrees_with_closed_form(trained, closed_form, standard_errors, CONFIG) is expected


def test_the_quantile_is_bonferroni_over_the_compared_coordinates():
    from scipy.stats import norm

    count = 2 * len(CONFIG.betas) * len(CONFIG.variances) * CONFIG.seeds
    assert study.head_quantile(CONFIG) == pytest.approx(norm.isf(CONFIG.head_alpha / (2 * count)))
