"""The Markdown report of ``coremtl verify``, built from the structured fields of the results.

Layout, read at a glance:

1. one run-metadata line (the only line that changes when the same run is repeated);
2. the paper's claims, one line each (:mod:`experiments.claims`): the claim in plain words, its
   outcome, one headline number with its interval, the evidence ids;
3. one verdict table, ``id | claim | expected | outcome | as expected? | headline``, with the legend
   of the verdicts in use (:data:`experiments.study.LEGEND`);
4. per study: the claim it tests, the result in at most two sentences, one small table, the
   captioned figures, and the registered predictions with their outcomes folded in ``<details>``.

Nothing is joined from prose: every cell comes from a field (verdict, headline, table, caption).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from experiments.claims import assess_all
from experiments.study import LEGEND, Finding
from proofs.headline import Headline


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _certificates(payload: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    proofs = payload.get("proofs")
    if isinstance(proofs, Mapping) and isinstance(proofs.get("certificates"), list):
        return proofs["certificates"]
    return []


def _studies(payload: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    return sorted(payload.get("studies", {}).items(), key=lambda item: int(item[0]))


def _headline_text(record: Mapping[str, Any] | None) -> str:
    return Headline.from_dict(record).text() if record else ""


def evidence(payload: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``id -> {"verdict", "headline", "expected", "title"}`` for every certificate and study."""
    found: dict[str, dict[str, Any]] = {}
    for certificate in _certificates(payload):
        found[certificate["statement"]] = {
            "verdict": certificate["verdict"],
            "expected": certificate["expected"],
            "headline": certificate.get("headline"),
            "title": certificate.get("title", ""),
            "claim": certificate.get("claim", ""),
        }
    for key, result in _studies(payload):
        if "error" in result:
            found[f"study {key}"] = {
                "verdict": "error",
                "expected": result.get("expected", ""),
                "headline": None,
                "title": result.get("name", ""),
                "claim": result.get("claim", ""),
            }
            continue
        finding = Finding.from_dict(result["finding"])
        found[f"study {key}"] = {
            "verdict": finding.verdict,
            "expected": result.get("expected", ""),
            "headline": finding.headline.to_dict(),
            "title": result.get("name", ""),
            "claim": result.get("claim", ""),
        }
    return found


def claim_lines(found: Mapping[str, Mapping[str, Any]]) -> list[str]:
    lines = []
    for assessed in assess_all(found):
        if not assessed.present:
            continue
        claim = assessed.claim
        headline = _headline_text(assessed.headline)
        lines.append(
            f"- **{claim.id}** ({claim.source}): {claim.words}. **{assessed.outcome}**"
            + (f": {headline}" if headline else "")
            + f" ({assessed.decided_by}; evidence {', '.join(assessed.present)})"
        )
    return lines


def verdict_table(found: Mapping[str, Mapping[str, Any]]) -> list[str]:
    lines = [
        "| id | claim | expected | outcome | as expected? | headline |",
        "|----|-------|----------|---------|--------------|----------|",
    ]
    for key, record in found.items():
        expected = record.get("expected") or ""
        matches = "yes" if expected == record["verdict"] else "no" if expected else ""
        lines.append(
            f"| {_cell(key)} | {_cell(record['title'])} | {_cell(expected)} | "
            f"**{_cell(record['verdict'])}** | {matches} | "
            f"{_cell(_headline_text(record.get('headline')))} |"
        )
    return lines


def legend(found: Mapping[str, Mapping[str, Any]]) -> list[str]:
    used = {record["verdict"] for record in found.values()}
    used |= {record["expected"] for record in found.values() if record.get("expected")}
    return [f"- *{verdict}*: {meaning}." for verdict, meaning in LEGEND.items() if verdict in used]


def _relative(path: Path, base: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), base.resolve())).as_posix()


def study_section(
    key: str, result: Mapping[str, Any], figures: list[Path], base: Path
) -> list[str]:
    lines = [f"### Study {key}: {result.get('name', '')}", ""]
    if "error" in result:
        return [*lines, "**error**: the study raised (the traceback is in the results file).", ""]
    finding = Finding.from_dict(result["finding"])
    expected = result.get("expected", "")
    lines += [
        f"Tests: {result.get('claim', '')} ({', '.join(result.get('statements', []))}). "
        f"Outcome **{finding.verdict}** (expected {expected}).",
        "",
        finding.result,
        "",
    ]
    if finding.table.rows:
        lines.append("| " + " | ".join(_cell(c) for c in finding.table.columns) + " |")
        lines.append("|" + "---|" * len(finding.table.columns))
        lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in finding.table.rows]
        lines.append("")
    for path in figures:
        if Path(path).suffix != ".png":
            continue
        relative = _relative(path, base)
        caption = finding.captions.get(Path(path).stem, Path(path).stem)
        pdf = Path(relative).with_suffix(".pdf").as_posix()
        lines += [f"![{_cell(caption)}]({relative})", "", f"*{caption}* ([PDF]({pdf}))", ""]
    outcomes = result.get("outcomes", [])
    if outcomes or finding.details:
        lines += ["<details><summary>Registered predictions and details</summary>", ""]
        if outcomes:
            lines += [
                "| id | registered prediction | held | measured |",
                "|----|-----------------------|------|----------|",
            ]
            for outcome in outcomes:
                held = {True: "yes", False: "no", None: "not measured"}[outcome.get("held")]
                lines.append(
                    f"| {_cell(outcome['id'])} | {_cell(outcome['statement'])} | {held} | "
                    f"{_cell(outcome.get('measured', ''))} |"
                )
            lines.append("")
        lines += [*finding.details, "", "</details>", ""]
    return lines


def run_metadata(payload: Mapping[str, Any]) -> str:
    configuration = payload.get("configuration", {})
    versions = configuration.get("versions", {})
    runtime = payload.get("runtime_seconds")
    return (
        f"Run: setting **{configuration.get('mode', '?')}**, first seed "
        f"{configuration.get('seed')}, device {configuration.get('device')}, started "
        f"{configuration.get('started')}"
        + (f", {runtime:.0f} s" if isinstance(runtime, int | float) else "")
        + f", commit `{configuration.get('git_commit', 'unknown')}`; "
        + ", ".join(f"{name} {value}" for name, value in versions.items())
        + "."
    )


def render_report(payload: Mapping[str, Any], figures: Mapping[str, list[Path]], base: Path) -> str:
    """The report text with figure links relative to the folder ``base`` it is written in."""
    found = evidence(payload)
    proofs = payload.get("proofs")
    lines = [
        "# core-mtl verify report",
        "",
        run_metadata(payload),
        "",
        "Every number is a mean over paired seeds with its 95% Student-t interval unless its "
        "study says otherwise; the full configuration of every study is in the results file.",
        "",
        "## The paper's claims",
        "",
        *claim_lines(found),
        "",
        "## Verdicts",
        "",
        *legend(found),
        "",
    ]
    if isinstance(proofs, Mapping) and "error" in proofs:
        lines += ["**The statement certificates raised an error** (see the results file).", ""]
    lines += [*verdict_table(found), "", "## Studies", ""]
    for key, result in _studies(payload):
        lines += study_section(key, result, figures.get(key, []), base)
    return "\n".join(lines).rstrip("\n") + "\n"


def write_reports(
    payload: Mapping[str, Any],
    figures: Mapping[str, list[Path]],
    results_path: Path,
    figures_dir: Path,
) -> list[Path]:
    """``REPORT.md`` next to the results file and in the figures folder (links relative to each)."""
    written = []
    for folder in dict.fromkeys((Path(results_path).parent, Path(figures_dir))):
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "REPORT.md"
        path.write_text(render_report(payload, figures, folder))
        written.append(path)
    return written
