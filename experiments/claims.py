"""The paper's claims in plain words, each with the certificates and studies that test it.

A claim's outcome is the most serious verdict of its evidence (:data:`experiments.study.SEVERITY`:
*error*, *fails*, *holds only as stated here*, *holds*; *measured* only when no evidence states a
verdict), and its headline is the headline of the first evidence that carries that outcome, so
the number shown is the one that decided it. Evidence ids are statement ids (``S1``..) and study
numbers (``study 9``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from experiments.study import MEASURED, SEVERITY


@dataclass(frozen=True)
class Claim:
    id: str
    words: str
    source: str
    evidence: tuple[str, ...]


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "OOD",
        "CORE-MTL is more robust out of distribution than gradient balancing, and its ingredients "
        "remove shortcuts",
        "the paper's experiments",
        ("study 9", "study 1"),
    ),
    Claim(
        "C1",
        "No loss weighting or gradient surgery removes the OOD gap of a representation that mixes "
        "semantic and residual factors by an angle psi",
        "Theorem 2.3",
        ("S1", "S2", "S3", "S4", "study 4", "study 11"),
    ),
    Claim(
        "C2",
        "A semantic stream that does not leak the residual makes the OOD gap insensitive to the "
        "size of the residual shift",
        "Theorem 2.4",
        ("S5", "study 2"),
    ),
    Claim(
        "C3",
        "Task gradients align with residual gradients at most as much as the streams' CKA allows",
        "Proposition 2.5",
        ("S7", "study 3"),
    ),
    Claim(
        "C4",
        "Minimising the linear CKA of the streams lowers the leakage of the residual into the "
        "semantic stream",
        "text",
        ("S6", "S8", "S10", "S11", "S13", "study 5"),
    ),
    Claim(
        "C5",
        "Substituting an input's residual moves the residual stream far more than the semantic one",
        "experiment",
        ("study 6",),
    ),
    Claim(
        "CFA",
        "The counterfactual swap of residuals pulls the encoder towards separating the factors",
        "method",
        ("S9", "study 7"),
    ),
    Claim(
        "Cost",
        "CORE-MTL's terms add a cost per step that does not grow with the number of tasks",
        "method",
        ("study 8",),
    ),
    Claim(
        "MT-CRL",
        "A shared multi-task model uses factors that are causal for one task but spurious for "
        "another more than single-task learning does",
        "Hu et al. 2022",
        ("S12", "study 10"),
    ),
)


@dataclass(frozen=True)
class ClaimOutcome:
    claim: Claim
    outcome: str
    decided_by: str | None
    headline: Mapping[str, Any] | None
    present: tuple[str, ...]


def assess(claim: Claim, evidence: Mapping[str, Mapping[str, Any]]) -> ClaimOutcome:
    """The claim's outcome from ``evidence`` (id -> ``{"verdict", "headline"}``; ids that were
    not run are left out)."""
    present = [key for key in claim.evidence if key in evidence]
    if not present:
        return ClaimOutcome(claim, "not run", None, None, ())
    stated = [key for key in present if evidence[key]["verdict"] != MEASURED] or present
    outcome = min((evidence[key]["verdict"] for key in stated), key=SEVERITY.index)
    decided = next(key for key in stated if evidence[key]["verdict"] == outcome)
    return ClaimOutcome(claim, outcome, decided, evidence[decided].get("headline"), tuple(present))


def assess_all(evidence: Mapping[str, Mapping[str, Any]]) -> list[ClaimOutcome]:
    return [assess(claim, evidence) for claim in CLAIMS]


def evidence_ids(claims: Sequence[Claim] = CLAIMS) -> list[str]:
    return [key for claim in claims for key in claim.evidence]
