"""Certificates' headlines read in the sense of their verdicts, and the first finding states what
the verdict rests on."""

from __future__ import annotations

import pytest

from proofs import registry
from proofs.headline import HEADLINE_LIMIT
from proofs.montecarlo import FLOAT64_ROUNDOFF
from proofs.s2_worst_case import UNQUALIFIED_C1
from proofs.s12_mtcrl_sharing import _counterexample_findings, _headline
from proofs.statement import Verdict

STATEMENT_IDS = tuple(registry.STATEMENTS)


def test_a_holding_certificate_headlines_its_agreement():
    certificate = registry.STATEMENTS["S7"].certify(0)
    assert certificate.verdict is Verdict.HOLDS
    headline = certificate.headline()
    assert headline is certificate.evidence.headline
    assert headline.value <= FLOAT64_ROUNDOFF
    assert certificate.evidence.findings[0].startswith("rho^2 - CKA is at most")


def test_a_failing_certificate_names_its_failed_check_first():
    certificate = UNQUALIFIED_C1.certify(0)
    assert certificate.verdict is Verdict.FAILS
    failed = certificate.counterexample["failed_checks"][0]["name"]
    first = certificate.evidence.findings[0]
    assert first.startswith("Fails: ") and failed in first
    assert failed in certificate.headline().metric


def test_s12_headline_is_the_strengthening_counterexample_when_one_was_found():
    found = {
        "strengthening_correlation": {
            "rho_source": 0.5,
            "rho_target": 0.9,
            "multi_task_gap": -0.226,
            "single_task_gap": 0.0,
        },
        "width_at_least_tasks": {"tasks": 3, "width": 3, "gap": 0.0},
    }
    headline = _headline(found, nonzero_pairs=19)
    assert headline.value == -0.226 and "strengthens" in headline.metric
    findings = _counterexample_findings(found)
    assert findings[0].startswith("Holds only if the correlation does not strengthen")
    assert len(findings) == 2


def test_s12_headline_without_a_counterexample_counts_the_sharing_scms():
    headline = _headline({"unqualified": "..."}, nonzero_pairs=19)
    assert headline.value == 19.0 and "another task's factor" in headline.metric
    assert _counterexample_findings({"unqualified": "..."}) == []


@pytest.mark.slow
@pytest.mark.parametrize("statement", STATEMENT_IDS)
def test_every_statement_sets_its_own_headline_within_the_report_limit(statement):
    certificate = registry.STATEMENTS[statement].certify(0)
    assert certificate.matches
    assert certificate.evidence.headline is not None
    text = certificate.headline().text()
    assert len(text) <= HEADLINE_LIMIT and not text.endswith("…")
    if certificate.verdict is Verdict.HOLDS_AS_STATED:
        assert any(word in certificate.headline().threshold for word in ("unqualified", "only"))
