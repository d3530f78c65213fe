"""Counterexamples of S2 and S6, the deliberately wrong C1, balancer training and ``coremtl prove``."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from coremtl_cli.main import main
from proofs import registry
from proofs.montecarlo import mean_and_standard_error
from proofs.s2_worst_case import (
    UNQUALIFIED_C1,
    _orthogonal_zero_gap,
    search_unqualified_counterexample,
)
from proofs.s6_cka_identifiability import search_blind_covariance
from proofs.s10_flexible_encoders import UNQUALIFIED_C4
from proofs.s11_source_correlation import UNQUALIFIED_C4_RHO
from proofs.statement import Verdict
from scm import ood_gap, random_scm


def test_s2_search_finds_a_shift_with_non_positive_gap_in_one_dimension():
    found = search_unqualified_counterexample(np.random.default_rng(0), max_k=1, tries=60)
    assert found is not None and found["k"] == 1
    assert found["gap"] <= 0 < found["shift_frobenius"]


def test_s2_shrinking_residual_variance_gives_a_negative_gap():
    scm = random_scm(k=1, num_tasks=1, seed=3, shift_size=0.2, shift_direction="shrink")
    assert ood_gap(scm, 0.8, scm.beta)[0] < 0


def test_s2_orthogonal_shift_leaves_the_gap_at_zero():
    found = _orthogonal_zero_gap(np.random.default_rng(1))
    assert found["shift_frobenius"] == pytest.approx(1.0)
    assert abs(found["gap"]) <= 1e-12


def test_s6_search_finds_the_blind_residual_law():
    found = search_blind_covariance(np.random.default_rng(0))
    assert found["k1"]["v"] == pytest.approx(1.0, abs=1e-6)
    assert found["k2"]["distance_to_sigma_s"] <= 1e-4
    assert found["k2"]["max_cka"] <= 1e-8


def test_unqualified_c1_is_caught_as_failing_with_a_counterexample():
    certificate = UNQUALIFIED_C1.certify(0)
    assert certificate.verdict is Verdict.FAILS
    assert certificate.matches
    failed = certificate.counterexample["failed_checks"]
    assert failed and failed[0]["value"] < failed[0]["reference"]


@pytest.mark.parametrize("wrong", [UNQUALIFIED_C4, UNQUALIFIED_C4_RHO], ids=["free-encoder", "rho"])
def test_unqualified_c4_variants_are_caught_as_failing(wrong):
    """'CKA = 0 implies no leakage' for a free linear encoder, and 'the CKA-penalised optimum is
    psi = 0' with a source-only correlation: each computed verdict is fails, with the leakage or
    the optimum it found away from the claimed 0."""
    certificate = wrong.certify(0)
    assert certificate.verdict is Verdict.FAILS
    assert certificate.matches
    failed = certificate.counterexample["failed_checks"]
    assert failed and all(check["error"] > check["tolerance"] for check in failed)


def test_registry_lists_s10_and_s11_after_s9():
    ids = list(registry.STATEMENTS)
    assert ids[ids.index("S9") + 1 : ids.index("S9") + 3] == ["S10", "S11"]
    assert [s.id for s in registry.select(["s11", "S10"])] == ["S10", "S11"]


@pytest.mark.slow
def test_prove_lists_s10_and_s11_with_their_verdicts(tmp_path, capsys):
    assert main(["prove", "--only", "S10,S11", "--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "S10" in out and "S11" in out
    payload = json.loads((tmp_path / "verdicts.json").read_text())
    verdicts = {c["statement"]: c["verdict"] for c in payload["certificates"]}
    assert verdicts == {"S10": "holds only as stated here", "S11": "holds only as stated here"}
    s10 = payload["certificates"][0]["counterexample"]["free_linear"]["whitening_rotation"]
    assert all(row["population_cka"] <= 1e-9 and row["lambda_rel"] > 1.0 for row in s10)
    for certificate in registry.certify_all(["S10", "S11"]):
        json.dumps(certificate.to_dict(), allow_nan=False)


def test_certified_heads_of_a_balancer_reach_the_closed_form():
    """GradNorm on the heads with psi fixed: the a-posteriori bound ||theta - theta*|| <=
    ||grad|| / lambda_min(H) holds (strong convexity), and 60 steps at lr 1/lambda_max bring the
    heads within 1e-4 of the closed form (float32 training stores them to ~1e-7)."""
    from proofs.population_training import PopulationRisk, train_heads_fixed_psi
    from scm import optimal_heads

    torch = pytest.importorskip("torch")
    scm = random_scm(k=2, num_tasks=2, seed=4, mean_shift=0.5)
    psi = 0.6
    risk = PopulationRisk.of(scm, dtype=torch.float32)
    eigenvalues = np.linalg.eigvalsh(risk.head_hessian(psi))
    weights, bias = optimal_heads(scm, psi)
    optimum = np.concatenate([weights, bias[:, None]], axis=1)
    theta, gradient = train_heads_fixed_psi(
        risk, psi, "gradnorm", 60, 1.0 / eigenvalues[-1], np.zeros_like(optimum)
    )
    distance = float(np.linalg.norm(theta - optimum))
    assert distance <= float(np.linalg.norm(gradient)) / eigenvalues[0] + 1e-6
    assert distance <= 1e-4 * (1 + np.linalg.norm(optimum))


def test_prove_writes_the_table_and_exits_zero_when_verdicts_match(tmp_path, capsys):
    assert main(["prove", "--only", "S2,S7", "--output", str(tmp_path), "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "holds only as stated here" in out and "S7" in out
    payload = json.loads((tmp_path / "verdicts.json").read_text())
    assert [c["statement"] for c in payload["certificates"]] == ["S2", "S7"]
    assert all(c["matches"] for c in payload["certificates"])
    assert payload["certificates"][0]["counterexample"]["search"]["gap"] <= 0
    assert "## S2" in (tmp_path / "verdicts.md").read_text()


def test_prove_exits_one_when_a_verdict_disagrees(tmp_path, monkeypatch):
    wrong = replace(UNQUALIFIED_C1, id="S1", expected=Verdict.HOLDS)
    monkeypatch.setitem(registry.STATEMENTS, "S1", wrong)
    assert main(["prove", "--only", "S1", "--output", str(tmp_path)]) == 1
    assert json.loads((tmp_path / "verdicts.json").read_text())["certificates"][0]["verdict"] == (
        "fails"
    )


def test_prove_rejects_unknown_statements_with_one_line(capsys):
    assert main(["prove", "--only", "S1,S42"]) == 2
    assert "unknown statement(s) S42" in capsys.readouterr().err


def test_prove_rejects_a_file_as_output_folder(tmp_path, capsys):
    target = tmp_path / "file.txt"
    target.write_text("x")
    assert main(["prove", "--only", "S7", "--output", str(target)]) == 2
    assert "expected a folder" in capsys.readouterr().err


def test_standard_error_needs_two_draws():
    with pytest.raises(ValueError, match="at least 2 draws"):
        mean_and_standard_error(np.array([1.0]))
    assert mean_and_standard_error(np.array([1.0, 3.0])) == pytest.approx((2.0, 1.0))


@pytest.mark.slow
def test_prove_runs_every_statement_with_expected_verdicts(tmp_path):
    assert main(["prove", "--output", str(tmp_path)]) == 0
    payload = json.loads((tmp_path / "verdicts.json").read_text())
    assert len(payload["certificates"]) == len(registry.STATEMENTS)
    assert math.isfinite(payload["seconds"])
