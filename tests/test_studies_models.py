"""Studies 2, 3 and 6 and the shared model zoo on tiny trained models: what each must show."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from experiments.synthetic import (
    study2_bound,
    study3_alignment,
    study6_substitution,
)
from experiments.synthetic.models import SMOKE_ZOO, ZooConfig, trained_zoo

TINY_ZOO = replace(
    SMOKE_ZOO,
    methods=("ew", "core-mtl", "mt-crl"),
    nonlinear_methods=("ew",),
    shifts=(0.0, 2.0, 4.0),
    eval_samples=1500,
    steps=25,
)


@pytest.fixture(scope="module")
def gap_result():
    return {"trained": list(trained_zoo(TINY_ZOO, 0, "cpu"))}


def test_trained_records_measure_angle_and_leakage(gap_result):
    for record in gap_result["trained"]:
        assert 0.0 <= record["sin2_psi"] <= 1.0
        if record["method"] != "mt-crl":
            assert record["lambda_leak"] >= 0.0


def test_leakage_bound_holds_for_every_dual_stream_model(gap_result):
    config = replace(study2_bound.CONFIGS["smoke"], zoo=TINY_ZOO)
    result = study2_bound.STUDY.run(config, seed=0)
    summary = result["summary"]
    assert summary["rows"]
    assert summary["share_holds"] == 1.0
    assert summary["share_holds_prediction_lipschitz"] == 1.0
    assert summary["largest_ratio"] <= 1.0
    assert result["verdict"] == "holds"


def test_substitution_ratio_is_reported_per_dual_stream_method(gap_result):
    config = replace(study6_substitution.CONFIGS["smoke"], zoo=TINY_ZOO)
    result = study6_substitution.STUDY.run(config)
    groups = result["summary"]["groups"].values()
    assert {entry["method"] for entry in groups} == {"ew", "core-mtl"}
    assert all(np.isfinite(e["ratio"]["mean"]) and e["ratio"]["mean"] > 0 for e in groups)
    assert result["summary"]["core_minus_ew"] is not None


def test_alignment_envelope_covers_every_point():
    config = replace(
        study3_alignment.CONFIGS["smoke"],
        zoo=ZooConfig(hidden=8, train_samples=128),
        steps=6,
        batch=32,
        seeds=3,
    )
    result = study3_alignment.STUDY.run(config, seed=0)
    envelope = result["summary"]["envelope"]
    assert result["measurements"]["points"]
    for point in result["measurements"]["points"]:
        assert 0.0 <= point["cos2"] <= 1.0 + 1e-12
        assert point["cos2"] <= envelope["c"] * point["cka"] + envelope["delta"] + 1e-9
        assert point["cos2"] <= point["cka"] + envelope["delta_at_c1"] + 1e-12


def test_envelope_lp_recovers_a_known_line():
    cka = np.linspace(0.0, 1.0, 11)
    cos2 = 0.5 * cka + 0.1
    fitted = study3_alignment.envelope(cka, cos2)
    assert fitted["c"] == pytest.approx(0.5, abs=1e-7)
    assert fitted["delta"] == pytest.approx(0.1, abs=1e-7)
