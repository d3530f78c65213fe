"""``coremtl prove``: certify the statements of docs/THEORY.md and print the verdict table.

Writes ``verdicts.md`` (table, then per statement its assumptions, symbolic steps, numerical checks,
counterexample and findings) and ``verdicts.json`` into ``--output``; when either exists already it
refuses before computing unless ``--overwrite`` is given. Exit status 0 when every computed verdict
equals its expected verdict, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

COLUMNS = ("statement", "claim", "verdict", "expected", "max error", "time (s)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from scm.validation import OVERWRITE_RULE

    parser.epilog = OVERWRITE_RULE
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("results/proofs"),
        help="folder for verdicts.md and verdicts.json (default results/proofs)",
    )
    parser.add_argument(
        "--only", default=None, help="comma-separated statement ids, e.g. S2,S6 (default: all)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of every Monte Carlo draw and search"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing verdicts.md/verdicts.json (without it the command refuses)",
    )


def table_rows(certificates) -> list[tuple[str, ...]]:
    return [
        (
            certificate.statement,
            certificate.claim,
            certificate.verdict.value,
            certificate.expected.value + ("" if certificate.matches else "  <-- MISMATCH"),
            f"{certificate.max_error:.2e}",
            f"{certificate.seconds:.1f}",
        )
        for certificate in certificates
    ]


def format_table(certificates) -> str:
    rows = [COLUMNS, *table_rows(certificates)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def markdown(certificates, seed: int) -> str:
    lines = [
        "# Verdicts of docs/THEORY.md",
        "",
        f"Seed {seed}. Verdicts: holds / holds only as stated here / fails.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(certificates)]
    for certificate in certificates:
        lines += ["", f"## {certificate.statement}: {certificate.title} ({certificate.claim})", ""]
        lines += [
            f"Verdict **{certificate.verdict.value}** (expected {certificate.expected.value})."
        ]
        lines += ["", "Assumptions:", *[f"- {text}" for text in certificate.assumptions]]
        lines += ["", "Sympy assumptions:"]
        lines += [f"- `{name}`: {kind}" for name, kind in certificate.sympy_assumptions.items()]
        lines += ["", "Symbolic steps:"]
        lines += [
            f"- [{'x' if step.passed else ' '}] {step.name}"
            + (f" ({step.certificate})" if step.certificate else "")
            for step in certificate.derivation
        ] or ["- (none)"]
        checks = certificate.evidence.checks
        failed = [check for check in checks if not check.passed]
        lines += ["", f"Numerical checks: {len(checks) - len(failed)} of {len(checks)} pass."]
        lines += [
            f"- FAILED {check.name}: {check.value:.6g} {check.relation} {check.reference:.6g} "
            f"(tolerance {check.tolerance:.3g}, {check.basis})"
            for check in failed
        ]
        if certificate.counterexample is not None:
            lines += [
                "",
                "Counterexample:",
                "```json",
                json.dumps(certificate.counterexample, indent=1, default=float)[:4000],
                "```",
            ]
        if certificate.evidence.findings:
            lines += ["", "Findings:", *[f"- {text}" for text in certificate.evidence.findings]]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    import time
    import warnings

    from proofs.registry import certify_all, select
    from scm.validation import check_output_path, check_seed, refuse_to_overwrite

    ids = None if args.only is None else args.only.split(",")
    select(ids)
    check_seed(args.seed, "--seed")
    output = check_output_path(args.output, "--output", folder=True)
    if not args.overwrite:
        refuse_to_overwrite([output / "verdicts.md", output / "verdicts.json"], "--output")
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        certificates = certify_all(ids, seed=args.seed)
    elapsed = time.perf_counter() - start
    print(format_table(certificates))
    mismatches = [c.statement for c in certificates if not c.matches]
    print(
        f"\n{len(certificates)} statements in {elapsed:.1f} s; "
        + (f"MISMATCH: {', '.join(mismatches)}" if mismatches else "every verdict as expected")
    )
    output.mkdir(parents=True, exist_ok=True)
    (output / "verdicts.md").write_text(markdown(certificates, args.seed))
    payload = {
        "seed": args.seed,
        "seconds": elapsed,
        "certificates": [certificate.to_dict() for certificate in certificates],
    }
    (output / "verdicts.json").write_text(json.dumps(payload, indent=1, default=float))
    print(f"wrote {output / 'verdicts.md'} and {output / 'verdicts.json'}")
    return 1 if mismatches else 0
