"""The verify report: built from structured fields, read at a glance, identical when rerun."""

from __future__ import annotations

from coremtl_cli.main import main
from experiments import report
from experiments.claims import CLAIMS, assess
from experiments.study import FAILS, HOLDS, MEASURED, QUALIFIED, Finding, Table
from proofs.headline import HEADLINE_LIMIT, Headline


def _study(verdict: str, expected: str, metric: str = "difference") -> dict:
    finding = Finding(
        verdict,
        Headline(metric, 0.25, 0.1, 0.4, "> 0 by 2 SE"),
        "One sentence. Two sentences.",
        Table(("method", "value"), (("EW", "0.5"),)),
        details=("a folded line",),
        captions={"stem": "caption"},
    )
    return {
        "name": "a study",
        "claim": "something",
        "statements": ["S1"],
        "expected": expected,
        "verdict": verdict,
        "finding": finding.to_dict(),
        "outcomes": [{"id": "P1", "statement": "it goes up", "held": True, "measured": "+0.2"}],
    }


def _payload(**studies: dict) -> dict:
    certificate = {
        "statement": "S5",
        "title": "Lipschitz bound",
        "claim": "C2",
        "verdict": QUALIFIED,
        "expected": QUALIFIED,
        "headline": Headline("bound exceeded by a factor", 2.8, threshold="<= 1").to_dict(),
    }
    return {
        "configuration": {"mode": "fast", "seed": 0, "versions": {"torch": "2"}},
        "proofs": {"certificates": [certificate]},
        "studies": studies,
    }


def test_verdict_table_cells_stay_short_and_columns_are_the_issue_s():
    long_metric = "x" * 400
    text = report.render_report(_payload(**{"2": _study(HOLDS, HOLDS, long_metric)}), {}, ".")
    table = [line for line in text.splitlines() if line.startswith("| study 2")]
    assert len(table) == 1
    assert all(len(cell) <= HEADLINE_LIMIT + 2 for cell in table[0].split("|"))
    assert "| id | claim | expected | outcome | as expected? | headline |" in text


def test_legend_lists_only_the_verdicts_in_use():
    text = report.render_report(_payload(**{"2": _study(FAILS, HOLDS)}), {}, ".")
    assert "- *fails*:" in text and "- *holds*:" in text
    assert "- *measured*:" not in text and "- *error*:" not in text


def test_as_expected_column_compares_outcome_with_expected():
    text = report.render_report(_payload(**{"2": _study(FAILS, HOLDS)}), {}, ".")
    row = next(line for line in text.splitlines() if line.startswith("| study 2"))
    assert "| **fails** | no |" in row


def test_a_claim_takes_the_most_serious_verdict_of_its_evidence_and_that_headline():
    claim = next(c for c in CLAIMS if c.id == "C2")
    evidence = {
        "S5": {"verdict": QUALIFIED, "headline": {"metric": "a", "value": 1.0}},
        "study 2": {"verdict": FAILS, "headline": {"metric": "b", "value": 2.0}},
    }
    assessed = assess(claim, evidence)
    assert assessed.outcome == FAILS and assessed.decided_by == "study 2"
    evidence["study 2"]["verdict"] = MEASURED
    assert assess(claim, evidence).outcome == QUALIFIED


def test_study_sections_fold_predictions_and_details():
    text = report.render_report(_payload(**{"2": _study(HOLDS, HOLDS)}), {}, ".")
    section = text[text.index("### Study 2") :]
    assert "<details>" in section and "it goes up" in section and "a folded line" in section
    assert section.index("One sentence.") < section.index("<details>")


def test_two_verify_runs_differ_only_in_the_run_metadata_line(tmp_path):
    outputs = []
    for name in ("first", "second"):
        folder = tmp_path / name
        argv = ["verify", "--smoke", "--only", "7", "--no-proofs"]
        argv += ["--results", str(folder / "verify.json"), "--figures", str(folder / "figures")]
        assert main(argv) == 0
        outputs.append(folder)
    first, second = outputs
    figures = [path for path in sorted((first / "figures").iterdir()) if path.suffix != ".md"]
    assert figures
    for path in figures:
        assert path.read_bytes() == (second / "figures" / path.name).read_bytes(), path.name
    old = (first / "figures" / "REPORT.md").read_text().splitlines()
    new = (second / "figures" / "REPORT.md").read_text().splitlines()
    changed = [a for a, b in zip(old, new, strict=True) if a != b]
    assert all(line.startswith("Run: ") for line in changed)
