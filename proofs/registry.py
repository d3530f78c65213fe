"""Every statement of docs/THEORY.md, in order, by id (S1..S8, the open question S9, S10 and S11
on flexible encoders and the source-only correlation rho, S12 on MT-CRL's claim, S13 on the
label-conditional penalty)."""

from __future__ import annotations

from collections.abc import Iterable

from proofs.s1_exact_risk import STATEMENT as S1
from proofs.s2_worst_case import STATEMENT as S2
from proofs.s3_reweighting import STATEMENT as S3
from proofs.s4_encoder_drift import STATEMENT as S4
from proofs.s5_lipschitz_bound import STATEMENT as S5
from proofs.s6_cka_identifiability import STATEMENT as S6
from proofs.s7_gradient_alignment import STATEMENT as S7
from proofs.s8_cka_estimator import STATEMENT as S8
from proofs.s9_counterfactual_swap import STATEMENT as S9
from proofs.s10_flexible_encoders import STATEMENT as S10
from proofs.s11_source_correlation import STATEMENT as S11
from proofs.s12_mtcrl_sharing import STATEMENT as S12
from proofs.s13_label_conditional import STATEMENT as S13
from proofs.statement import Certificate, Statement
from scm.validation import InvalidParameterError

STATEMENTS: dict[str, Statement] = {
    statement.id: statement
    for statement in (S1, S2, S3, S4, S5, S6, S7, S8, S9, S10, S11, S12, S13)
}


def select(ids: Iterable[str] | None = None) -> list[Statement]:
    """The statements named by ``ids`` (all when ``None``), in registry order."""
    if ids is None:
        return list(STATEMENTS.values())
    wanted = [name.strip().upper() for name in ids if name.strip()]
    unknown = [name for name in wanted if name not in STATEMENTS]
    if unknown or not wanted:
        raise InvalidParameterError(
            f"only: unknown statement(s) {', '.join(unknown) or '(none given)'}; "
            f"expected a comma-separated subset of {', '.join(STATEMENTS)}"
        )
    return [statement for name, statement in STATEMENTS.items() if name in wanted]


def certify_all(ids: Iterable[str] | None = None, seed: int = 0) -> list[Certificate]:
    """Certify the selected statements, each with its own generator seeded from ``seed``."""
    return [statement.certify(seed) for statement in select(ids)]
