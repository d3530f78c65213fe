"""Linear-Gaussian structural causal models of setting S (docs/THEORY.md) and their closed forms."""

from scm.closed_form import (
    gaussian_w2,
    leakage_coefficient,
    linear_encoder_leakage,
    ood_gap,
    ood_gap_formula,
    optimal_heads,
    population_cka,
    risks,
    stream_covariance,
    worst_case_gap,
    worst_case_target_covariance,
)
from scm.encoder import block_rotation, encode, encoder_matrix
from scm.generate import (
    SHIFT_DIRECTIONS,
    haar_orthogonal,
    random_psd,
    random_scm,
    scalar_scm,
    shifted_covariance,
)
from scm.mixing import NonlinearMixing
from scm.model import ENVIRONMENTS, LinearGaussianSCM, ResidualLaw
from scm.sampling import Sample, sample
from scm.seeds import derive_seed
from scm.validation import InvalidParameterError

__all__ = [
    "ENVIRONMENTS",
    "SHIFT_DIRECTIONS",
    "InvalidParameterError",
    "LinearGaussianSCM",
    "NonlinearMixing",
    "ResidualLaw",
    "Sample",
    "block_rotation",
    "derive_seed",
    "encode",
    "encoder_matrix",
    "gaussian_w2",
    "haar_orthogonal",
    "leakage_coefficient",
    "linear_encoder_leakage",
    "ood_gap",
    "ood_gap_formula",
    "optimal_heads",
    "population_cka",
    "random_psd",
    "random_scm",
    "risks",
    "sample",
    "scalar_scm",
    "shifted_covariance",
    "stream_covariance",
    "worst_case_gap",
    "worst_case_target_covariance",
]
