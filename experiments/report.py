"""The Markdown report of ``coremtl verify``: verdict table, one finding per study, the figures."""

from __future__ import annotations

import os
from pathlib import Path

from experiments.synthetic.common import BAND


def _certificates(proofs) -> list[dict]:
    """The certificate records of the proofs section, whatever container holds them."""
    if isinstance(proofs, list):
        return [item for item in proofs if isinstance(item, dict)]
    if isinstance(proofs, dict):
        for key in ("certificates", "statements", "results"):
            if isinstance(proofs.get(key), list):
                return [item for item in proofs[key] if isinstance(item, dict)]
    return []


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def verdict_table(payload: dict) -> list[str]:
    """Rows for every certificate of ``coremtl prove`` and every study."""
    lines = [
        "| id | what | claim | verdict | evidence |",
        "|----|------|-------|---------|----------|",
    ]
    proofs = payload.get("proofs")
    if isinstance(proofs, dict) and "error" in proofs:
        lines.append(
            "| proofs | coremtl prove | | **error** | the proofs runner raised (see JSON) |"
        )
    for certificate in _certificates(proofs):
        statement = certificate.get("statement", "?")
        verdict = certificate.get("verdict", "?")
        expected = certificate.get("expected")
        note = "" if expected in (None, verdict) else f" (expected: {expected})"
        findings = certificate.get("findings") or (certificate.get("evidence") or {}).get(
            "findings", []
        )
        evidence = findings[0] if findings else certificate.get("title", "")
        lines.append(
            f"| {_cell(statement)} | certificate | {_cell(certificate.get('claim', ''))} | "
            f"**{_cell(verdict)}**{_cell(note)} | {_cell(evidence)} |"
        )
    for key, result in sorted(payload.get("studies", {}).items(), key=lambda item: int(item[0])):
        statements = ", ".join(result.get("statements", []))
        lines.append(
            f"| Study {key} | {_cell(result.get('name', ''))} | {_cell(statements)} | "
            f"**{_cell(result.get('verdict', '?'))}** | {_cell(result.get('finding', ''))} |"
        )
    return lines


def render_report(payload: dict, figures: dict[str, list[Path]], base: Path) -> str:
    """The report text with figure links relative to the folder ``base`` it is written in."""
    configuration = payload.get("configuration", {})
    versions = configuration.get("versions", {})
    runtime = payload.get("runtime_seconds")
    lines = [
        "# core-mtl verify report",
        "",
        f"Setting **{configuration.get('mode', '?')}**, first seed {configuration.get('seed')}, "
        f"device {configuration.get('device')}, started {configuration.get('started')}, "
        + (f"runtime {runtime:.0f} s, " if isinstance(runtime, (int, float)) else "")
        + f"commit `{configuration.get('git_commit', 'unknown')}`.",
        "Versions: " + ", ".join(f"{name} {value}" for name, value in versions.items()) + ".",
        f"Error bands are {BAND} unless a study says otherwise. The full configuration of every "
        "study is in the results JSON (`configuration.study_settings`).",
        "",
        "## Verdicts",
        "",
        "Certificates: *holds*, *holds only as stated here* or *fails* (docs/THEORY.md). Studies: "
        "*agrees* (the measurement agrees with the statement it checks), *agrees only as "
        "qualified*, *theory agrees; CORE-MTL advantage contradicted* (the closed forms and the "
        "baselines behave as the theory says, but CORE-MTL does not show the advantage the paper "
        "reports), *contradicts* (the paper's claim is not reproduced; numbers in the finding), "
        "*measured* (a question answered by measurement), *error*.",
        "",
        *verdict_table(payload),
        "",
        "## Findings",
        "",
    ]
    for key, result in sorted(payload.get("studies", {}).items(), key=lambda item: int(item[0])):
        seconds = result.get("seconds")
        timing = f" ({seconds:.0f} s)" if isinstance(seconds, (int, float)) else ""
        lines.append(
            f"- **Study {key}, {result.get('name', '')}**{timing}: {result.get('finding', '')}"
        )
    lines += ["", "## Figures", ""]
    for key, paths in sorted(figures.items(), key=lambda item: int(item[0])):
        pngs = [path for path in paths if Path(path).suffix == ".png"]
        if not pngs:
            continue
        name = payload["studies"][key].get("name", "")
        lines += [f"### Study {key}: {name}", ""]
        for path in pngs:
            relative = Path(os.path.relpath(Path(path).resolve(), base.resolve())).as_posix()
            pdf = Path(relative).with_suffix(".pdf").as_posix()
            lines += [f"![Study {key}: {Path(path).stem}]({relative})", f"([PDF]({pdf}))", ""]
    return "\n".join(lines) + "\n"


def write_reports(
    payload: dict, figures: dict[str, list[Path]], results_path: Path, figures_dir: Path
) -> list[Path]:
    """``REPORT.md`` next to the results file and in the figures folder (links relative to each)."""
    written = []
    for folder in (Path(results_path).parent, Path(figures_dir)):
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "REPORT.md"
        path.write_text(render_report(payload, figures, folder))
        written.append(path)
    return written
