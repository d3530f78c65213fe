"""A statement of docs/THEORY.md as a certificate: symbolic derivation, numerical checks, verdict.

A :class:`Statement` names the paper's claim it formalises, its assumptions (in words and as
sympy assumptions), a ``derive`` function returning the symbolic steps (each an identity whose
difference simplified to zero, or an inequality whose slack was exhibited as a sum of squares)
and a ``measure`` function returning numerical checks against ``scm/``. The computed verdict is

- ``fails`` when any symbolic step or numerical check of the precise statement fails (the failing
  check is the counterexample);
- ``holds only as stated here`` when everything passes and a counterexample to the paper's
  unqualified wording was found;
- ``holds`` otherwise.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from proofs.headline import Headline


class Verdict(str, Enum):
    """The three outcomes a statement can have (docs/THEORY.md)."""

    HOLDS = "holds"
    HOLDS_AS_STATED = "holds only as stated here"
    FAILS = "fails"


@dataclass(frozen=True)
class SymbolicStep:
    """One symbolic fact: ``lhs - rhs`` simplified to zero (``relation='=='``), or ``lhs - rhs``
    shown to equal the exhibited non-negative ``certificate`` (``relation='>='``)."""

    name: str
    lhs: str
    rhs: str
    relation: str
    passed: bool
    certificate: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "lhs": self.lhs,
            "relation": self.relation,
            "rhs": self.rhs,
            "certificate": self.certificate,
            "passed": self.passed,
        }


@dataclass(frozen=True)
class NumericCheck:
    """``value (relation) reference`` up to ``tolerance``; ``basis`` says where the tolerance comes
    from (a standard error, a rounding level, float64 round-off)."""

    name: str
    value: float
    reference: float
    tolerance: float
    basis: str
    relation: str = "=="

    @property
    def error(self) -> float:
        """Absolute violation: ``|value - reference|`` for ``==``, the excess for ``<=``/``>=``."""
        if self.relation == "==":
            return abs(self.value - self.reference)
        if self.relation == "<=":
            return max(0.0, self.value - self.reference)
        return max(0.0, self.reference - self.value)

    @property
    def passed(self) -> bool:
        return bool(np.isfinite(self.value)) and self.error <= self.tolerance

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "relation": self.relation,
            "reference": self.reference,
            "tolerance": self.tolerance,
            "error": self.error,
            "basis": self.basis,
            "passed": self.passed,
        }


@dataclass
class Evidence:
    """What ``measure`` found: checks of the precise statement, an optional counterexample to the
    paper's unqualified wording, findings in words (the first states what the verdict rests on;
    :meth:`Statement.certify` puts the failed steps and checks first for a failing statement)
    and tables of measurements."""

    checks: list[NumericCheck] = field(default_factory=list)
    counterexample: dict[str, Any] | None = None
    findings: list[str] = field(default_factory=list)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    headline: Headline | None = None
    """The one number the report shows (:meth:`Certificate.headline`), read in the sense of the
    verdict: the counterexample's number for a qualified statement, the agreement otherwise."""


@dataclass
class Certificate:
    """The outcome of checking one statement."""

    statement: str
    claim: str
    title: str
    assumptions: tuple[str, ...]
    sympy_assumptions: Mapping[str, str]
    derivation: list[SymbolicStep]
    evidence: Evidence
    verdict: Verdict
    expected: Verdict
    seconds: float
    counterexample: dict[str, Any] | None

    @property
    def matches(self) -> bool:
        return self.verdict == self.expected

    @property
    def max_error(self) -> float:
        """Largest relative error ``|value - reference| / max(1, |reference|)`` of the equality
        checks, and largest excess of the inequality checks (0 when none)."""
        errors = [
            check.error / max(1.0, abs(check.reference))
            for check in self.evidence.checks
            if math.isfinite(check.reference)
        ]
        return max(errors, default=0.0)

    def headline(self) -> Headline:
        """The evidence's headline; without one, the largest error of the checks against their
        tolerances (or the failing check, for a statement that fails)."""
        failed = [check for check in self.evidence.checks if not check.passed]
        if self.verdict == Verdict.FAILS and failed:
            check = failed[0]
            return Headline(
                f"failed check '{check.name}': {check.relation} reference", check.value,
                threshold=f"reference {check.reference:.4g} +- {check.tolerance:.2g}",
            )  # fmt: skip
        if self.evidence.headline is not None:
            return self.evidence.headline
        steps = sum(step.passed for step in self.derivation)
        return Headline(
            f"{steps} symbolic steps; largest relative error of {len(self.evidence.checks)} checks",
            self.max_error,
            threshold="each within its stated tolerance",
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "statement": self.statement,
            "headline": self.headline().to_dict(),
            "claim": self.claim,
            "title": self.title,
            "assumptions": list(self.assumptions),
            "sympy_assumptions": dict(self.sympy_assumptions),
            "derivation": [step.to_dict() for step in self.derivation],
            "checks": [check.to_dict() for check in self.evidence.checks],
            "counterexample": self.counterexample,
            "findings": list(self.evidence.findings),
            "tables": self.evidence.tables,
            "verdict": self.verdict.value,
            "expected": self.expected.value,
            "matches": self.matches,
            "max_error": self.max_error,
            "seconds": self.seconds,
        }


@dataclass(frozen=True)
class Statement:
    """One statement of docs/THEORY.md with the means to check it."""

    id: str
    claim: str
    title: str
    expected: Verdict
    assumptions: tuple[str, ...]
    sympy_assumptions: Mapping[str, str]
    derive: Callable[[], list[SymbolicStep]]
    measure: Callable[[np.random.Generator], Evidence]
    unqualified: str = ""

    def certify(self, seed: int = 0) -> Certificate:
        """Run the derivation and the measurements and compute the verdict."""
        start = time.perf_counter()
        derivation = self.derive()
        evidence = self.measure(np.random.default_rng(seed))
        failed_steps = [step for step in derivation if not step.passed]
        failed_checks = [check for check in evidence.checks if not check.passed]
        counterexample = evidence.counterexample
        if failed_steps or failed_checks:
            verdict = Verdict.FAILS
            counterexample = {
                "failed_steps": [step.to_dict() for step in failed_steps],
                "failed_checks": [check.to_dict() for check in failed_checks],
            }
            evidence.findings.insert(
                0,
                "Fails: "
                + "; ".join(
                    [f"symbolic step '{step.name}'" for step in failed_steps]
                    + [
                        f"'{check.name}' ({check.value:.4g} against {check.reference:.4g} "
                        f"+- {check.tolerance:.2g})"
                        for check in failed_checks
                    ]
                )
                + ".",
            )
        elif counterexample is not None:
            verdict = Verdict.HOLDS_AS_STATED
        else:
            verdict = Verdict.HOLDS
        return Certificate(
            statement=self.id,
            claim=self.claim,
            title=self.title,
            assumptions=self.assumptions,
            sympy_assumptions=self.sympy_assumptions,
            derivation=derivation,
            evidence=evidence,
            verdict=verdict,
            expected=self.expected,
            seconds=time.perf_counter() - start,
            counterexample=counterexample,
        )
