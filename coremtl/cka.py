"""Linear centred kernel alignment (CKA) between two batches of features.

For features ``X`` (n x p) and ``Y`` (n x q) with linear kernels ``K = X X^T``, ``L = Y Y^T``,
``CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))`` (Kornblith et al. 2019), with either HSIC
estimator:

- biased (Gretton et al. 2005): ``HSIC_b = tr(K H L H) / (n - 1)^2`` with ``H = I - 11^T / n``.
  For column-centred ``Xc = H X`` it is ``||Xc^T Yc||_F^2 / (n - 1)^2``, so
  ``CKA_b = ||Xc^T Yc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)``;
- unbiased (Song et al. 2012, used for CKA by Nguyen et al. 2021): with ``Kt``, ``Lt`` the kernels
  with their diagonals set to zero,
  ``HSIC_u = [tr(Kt Lt) + (1^T Kt 1)(1^T Lt 1) / ((n - 1)(n - 2)) - 2/(n - 2) 1^T Kt Lt 1]
  / (n (n - 3))``, an unbiased estimator of ``||Cov(X, Y)||_F^2`` (needs ``n >= 4``).

Both estimators are invariant to adding a constant to the features (the unbiased one as a
U-statistic), so features are column-centred first; then ``K 1 = 0`` and both reduce to the inner
products ``tr(K L) = ||X^T Y||_F^2``, ``tr(K K)``, ``tr(L L)`` and the row norms
``d_K = diag(K)``. The inner products are computed from the n x n Gram matrices or in feature
space, whichever is cheaper (Gram matrices cost ``n^2 (p + q)``, feature space
``n (pq + p^2 + q^2)``).

Feature maps ``(B, C, H, W)`` are global-average-pooled over ``H, W`` by default (``maps='pool'``,
as the method's independence penalty uses pooled streams), or flattened to ``(B, C H W)`` with
``maps='flatten'``. A batch in which either input is constant (zero variance, up to rounding)
gives CKA 0, never NaN.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from scm.validation import InvalidParameterError

MAP_MODES = ("pool", "flatten")


def as_feature_matrix(features: Tensor, maps: str = "pool", name: str = "features") -> Tensor:
    """``(B, d)`` features from vectors ``(B, d)`` or maps ``(B, C, H, W)`` (pooled or flattened)."""
    if maps not in MAP_MODES:
        raise InvalidParameterError(f"maps: expected one of {MAP_MODES}, got {maps!r}")
    if features.ndim == 2:
        return features
    if features.ndim == 4:
        return features.mean(dim=(2, 3)) if maps == "pool" else features.flatten(1)
    raise InvalidParameterError(
        f"{name}: expected vectors (B, d) or maps (B, C, H, W), got shape {tuple(features.shape)}"
    )


def _centred(features: Tensor) -> tuple[Tensor, Tensor]:
    """Column-centred features and whether the batch has non-zero variance beyond rounding."""
    centred = features - features.mean(dim=0, keepdim=True)
    tolerance = 64 * torch.finfo(features.dtype).eps * torch.linalg.vector_norm(features)
    return centred, torch.linalg.vector_norm(centred) > tolerance


def _gram_is_cheaper(n: int, p: int, q: int) -> bool:
    return n * n * (p + q) < n * (p * q + p * p + q * q)


def _kernel_inner_products(x: Tensor, y: Tensor, use_gram: bool) -> tuple[Tensor, Tensor, Tensor]:
    """``(tr(KL), tr(KK), tr(LL))`` from Gram matrices or as ``||X^T Y||_F^2`` etc."""
    if use_gram:
        k, l_ = x @ x.T, y @ y.T
        return (k * l_).sum(), k.square().sum(), l_.square().sum()
    return (x.T @ y).square().sum(), (x.T @ x).square().sum(), (y.T @ y).square().sum()


def _unbiased_hsic(trace: Tensor, d_x: Tensor, d_y: Tensor) -> Tensor:
    """Song et al. (2012) unbiased HSIC of centred linear kernels, times ``n (n - 3)``.

    For column-centred features ``K 1 = 0``, so ``Kt 1 = -d_K`` and ``1^T Kt 1 = -sum(d_K)``;
    with ``tr(Kt Lt) = tr(K L) - d_K . d_L`` the estimator becomes
    ``tr(K L) - (1 + 2/(n - 2)) d_K . d_L + sum(d_K) sum(d_L) / ((n - 1)(n - 2))``.
    """
    n = d_x.shape[0]
    return (
        trace
        - (1.0 + 2.0 / (n - 2)) * (d_x * d_y).sum()
        + d_x.sum() * d_y.sum() / ((n - 1) * (n - 2))
    )


def linear_cka(
    x: Tensor,
    y: Tensor,
    debiased: bool = True,
    maps: str = "pool",
    method: str = "auto",
) -> Tensor:
    """Linear CKA between ``x`` (B, p) and ``y`` (B, q) (or maps, see the module docstring).

    ``method`` is ``'auto'`` (the cheaper formulation), ``'features'`` or ``'gram'``. Returns a
    0-d tensor, differentiable in both inputs; 0 when either input is constant over the batch.
    The debiased estimator needs a batch of at least 4 and can be slightly negative.
    """
    x = as_feature_matrix(x, maps, "x")
    y = as_feature_matrix(y, maps, "y")
    if x.shape[0] != y.shape[0]:
        raise InvalidParameterError(
            f"y: expected the same batch size as x ({x.shape[0]}), got {y.shape[0]}"
        )
    if method not in ("auto", "features", "gram"):
        raise InvalidParameterError(
            f"method: expected 'auto', 'features' or 'gram', got {method!r}"
        )
    n = x.shape[0]
    minimum = 4 if debiased else 2
    if n < minimum:
        estimator = "debiased" if debiased else "biased"
        raise InvalidParameterError(
            f"x: the {estimator} CKA estimator needs a batch of at least {minimum}, got {n}"
        )
    x, x_varies = _centred(x)
    y, y_varies = _centred(y)
    use_gram = _gram_is_cheaper(n, x.shape[1], y.shape[1]) if method == "auto" else method == "gram"
    cross, self_x, self_y = _kernel_inner_products(x, y, use_gram)
    if debiased:
        d_x, d_y = x.square().sum(dim=1), y.square().sum(dim=1)
        cross = _unbiased_hsic(cross, d_x, d_y)
        self_x = _unbiased_hsic(self_x, d_x, d_x)
        self_y = _unbiased_hsic(self_y, d_y, d_y)
    denominator_squared = self_x * self_y
    valid = x_varies & y_varies & (self_x > 0) & (self_y > 0)
    tiny = torch.finfo(denominator_squared.dtype).tiny
    safe_denominator = torch.sqrt(torch.clamp(denominator_squared, min=tiny))
    return torch.where(valid, cross / safe_denominator, torch.zeros_like(cross))


def expected_biased_cka_independent(batch_size: int, dim_x: int, dim_y: int) -> float:
    """Expected biased linear CKA of independent isotropic Gaussian features (THEORY.md S8).

    With ``m = n - 1`` and ``Xc = H X``, ``Yc = H Y`` for ``X`` (n x p), ``Y`` (n x q) with i.i.d.
    standard normal entries, ``W_x = X^T H X ~ Wishart_p(m, I)``, so
    ``E ||Xc^T Yc||_F^2 = E tr(Yc^T Xc Xc^T Yc) = q E tr(W_x) = m p q`` and
    ``E ||W_x||_F^2 = E tr(W_x^2) = m p (m + p + 1)``. The ratio of the numerator's mean to the
    root-mean-square denominators gives

        E[CKA_b] ~= sqrt(p q / ((m + p + 1)(m + q + 1))),

    a delta-method approximation whose relative error is of the order of the squared coefficients
    of variation of numerator and denominators, ``2/(m p) + 2/(m q) + 2/(p q)``
    (:func:`biased_cka_approximation_error`). It tends to 1 when
    ``p, q >> n`` (the biased estimator cannot tell independent wide features apart) and to 0
    only as ``n / sqrt(pq) -> infinity``; at ``n = 16``, ``p = 512``, ``q = 256`` it is 0.955.
    """
    for value, name in ((batch_size, "batch_size"), (dim_x, "dim_x"), (dim_y, "dim_y")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidParameterError(f"{name}: expected a positive integer, got {value!r}")
    if batch_size < 2:
        raise InvalidParameterError(f"batch_size: expected at least 2, got {batch_size}")
    m = batch_size - 1
    return math.sqrt(dim_x * dim_y / ((m + dim_x + 1) * (m + dim_y + 1)))


def biased_cka_approximation_error(batch_size: int, dim_x: int, dim_y: int) -> float:
    """Relative size ``2/(m p) + 2/(m q) + 2/(p q)`` of the remainder of
    :func:`expected_biased_cka_independent`: the squared coefficients of variation of
    ``tr(W_x)`` (chi-square with ``m p`` degrees), ``tr(W_y)``, and of the ``p q`` entries summed in
    the numerator, which set the second-order term of the ratio's delta-method expansion."""
    expected_biased_cka_independent(batch_size, dim_x, dim_y)
    m = batch_size - 1
    return 2.0 / (m * dim_x) + 2.0 / (m * dim_y) + 2.0 / (dim_x * dim_y)
