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
U-statistic), so features are column-centred first; then ``K 1 = 0`` and, with the row norms
``D = [diag K, diag L]`` (n x 2) and their sums ``s = 1^T D``, the three HSIC numerators form the
symmetric 2 x 2 matrix

    S = R - kappa D^T D + s s^T / m,    R = [[tr KK, tr KL], [tr KL, tr LL]],

with ``kappa = 1 + 2/(n - 2)``, ``m = (n - 1)(n - 2)`` for the unbiased estimator
(``tr(Kt Lt) = tr(K L) - d_K . d_L``, ``1^T Kt 1 = -s_K``; the common factor ``1/(n (n - 3))``
cancels) and ``S = R`` for the biased one; ``CKA = S_xy / sqrt(S_xx S_yy)``. ``R`` comes from the
feature-space products ``A = Xc^T Xc``, ``M = Xc^T Yc``, ``B = Yc^T Yc`` (``tr KL = ||M||_F^2``,
``tr KK = ||A||_F^2``) or from the n x n Gram matrices, whichever is cheaper. The gradient is
written out (:class:`_LinearCKA`) rather than traced: with ``W = 4 dCKA/dS`` (symmetric),

    dCKA/dXc = W_xx Xc A + W_xy Yc M^T + r_x o Xc,   dCKA/dYc = W_yy Yc B + W_xy Xc M + r_y o Yc,

``[r_x, r_y] = (s^T / m - kappa D) W`` (per row; only for the unbiased estimator), then the
centring ``H`` applied (only the ``r`` terms have non-zero column means); from Gram matrices
``Xc A = K Xc`` and ``Yc M^T = L Xc``. A forward and backward pass costs
``n (2p^2 + 3pq + 2q^2)`` multiply-adds in feature space (three products forward, four backward)
and ``2 n^2 (p + q)`` from Gram matrices.

Feature maps ``(B, C, H, W)`` are global-average-pooled over ``H, W`` by default (``maps='pool'``,
as the method's independence penalty uses pooled streams), or flattened to ``(B, C H W)`` with
``maps='flatten'``. A batch in which either input is constant (zero variance, up to rounding)
gives CKA 0 and a zero gradient, never NaN. CKA is computed in the inputs' precision with
autocast switched off (its sums of squares lose too much in half precision).

CKA does not change when either input is multiplied by a constant, but its fourth powers
(``tr KK``) leave the float32 range for entries beyond about ``1e9`` and underflow below about
``1e-9``. Each input is therefore first divided by ``2^e``, the power of two nearest its largest
absolute entry (:func:`_unit_scale`): exact in floating point, so the value and the gradient
(``dCKA/dX = 2^{-e} dCKA/dX'`` at ``X' = 2^{-e} X``) are those of the unscaled formula wherever
it is representable, and the degenerate-feature guard compares variances relative to the
input's own scale at any scale.
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


def _unit_scale(features: Tensor) -> Tensor:
    """``2^e`` with ``e`` the binary exponent of ``max |features|`` (1 for all-zero features), a
    constant of the graph."""
    largest = features.detach().abs().amax()
    _, exponent = torch.frexp(largest)
    scale = torch.ldexp(torch.ones_like(largest), exponent)
    return torch.where(largest > 0, scale, torch.ones_like(scale))


def _gram_is_cheaper(n: int, p: int, q: int) -> bool:
    """Forward and backward: ``2 n^2 (p + q)`` from Gram matrices against ``n (2p^2 + 3pq + 2q^2)``
    in feature space."""
    return 2 * n * (p + q) < 2 * p * p + 3 * p * q + 2 * q * q


def _centre(features: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``Xc = H X``, its squared row norms ``diag(Xc Xc^T)`` and ``n ||mean||^2`` (the part of
    ``||X||_F^2`` that centring removes)."""
    mean = features.mean(dim=0, keepdim=True)
    centred = features - mean
    row_norms = torch.linalg.vector_norm(centred, dim=1).square()
    return centred, row_norms, features.shape[0] * mean.square().sum()


def _hsic_numerators(raw: Tensor, norms: Tensor, sums: Tensor, n: int, debiased: bool) -> Tensor:
    """``S = R - kappa D^T D + s s^T / m`` (unbiased) or ``S = R`` (biased), 2 x 2."""
    if not debiased:
        return raw
    kappa, m = 1.0 + 2.0 / (n - 2), (n - 1) * (n - 2)
    return raw - kappa * (norms.T @ norms) + torch.outer(sums, sums) / m


class _LinearCKA(torch.autograd.Function):
    """``CKA(x, y)`` with the closed-form gradient of the module docstring (first order only)."""

    @staticmethod
    def forward(ctx, x: Tensor, y: Tensor, debiased: bool, use_gram: bool) -> Tensor:
        n = x.shape[0]
        x, norms_x, offset_x = _centre(x)
        y, norms_y, offset_y = _centre(y)
        if use_gram:
            first, second = x @ x.T, y @ y.T
            cross = (first * second).sum()
        else:
            first, second = x.T @ x, y.T @ y
            between = x.T @ y
            cross = between.square().sum()
        raw = torch.stack([first.square().sum(), cross, cross, second.square().sum()]).view(2, 2)
        norms = torch.stack([norms_x, norms_y], dim=1)
        sums = norms.sum(dim=0)
        numerators = _hsic_numerators(raw, norms, sums, n, debiased)
        uncentred = sums + torch.stack([offset_x, offset_y])
        varies = sums > (64 * torch.finfo(x.dtype).eps) ** 2 * uncentred
        self_terms = numerators.diagonal()
        valid = varies.all() & (self_terms > 0).all()
        tiny = torch.finfo(x.dtype).tiny
        inverse_norm = torch.rsqrt(torch.clamp(self_terms.prod(), min=tiny))
        if use_gram:
            ctx.save_for_backward(x, y, first, second)
        else:
            ctx.save_for_backward(x, y, first, second, between)
        ctx.debiased, ctx.use_gram = debiased, use_gram
        ctx.statistics = (valid, inverse_norm, numerators, norms, sums)
        return torch.where(valid, numerators[0, 1] * inverse_norm, torch.zeros_like(inverse_norm))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        valid, inverse_norm, numerators, norms, sums = ctx.statistics
        x, y, first, second, *between = ctx.saved_tensors
        n = x.shape[0]
        tiny = torch.finfo(numerators.dtype).tiny
        scale = torch.where(valid, grad, torch.zeros_like(grad))
        alpha = scale * inverse_norm
        beta = -alpha * numerators[0, 1] / (2 * numerators.diagonal().clamp(min=tiny))
        weights = torch.stack([4 * beta[0], 2 * alpha, 2 * alpha, 4 * beta[1]]).view(2, 2)
        if ctx.use_gram:
            grad_x = (weights[0, 0] * first + weights[0, 1] * second) @ x
            grad_y = (weights[0, 1] * first + weights[1, 1] * second) @ y
        else:
            cross_weighted = weights[0, 1] * between[0]
            grad_x = torch.addmm(y @ cross_weighted.T, x, weights[0, 0] * first)
            grad_y = torch.addmm(x @ cross_weighted, y, weights[1, 1] * second)
        if ctx.debiased:
            kappa, m = 1.0 + 2.0 / (n - 2), (n - 1) * (n - 2)
            rows = (sums / m - kappa * norms) @ weights
            grad_x = torch.addcmul(grad_x, rows[:, :1], x) - (rows[:, 0] @ x) / n
            grad_y = torch.addcmul(grad_y, rows[:, 1:], y) - (rows[:, 1] @ y) / n
        return grad_x, grad_y, None, None


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
    The debiased estimator needs a batch of at least 4 and can be slightly negative. Features
    holding NaN or infinity are refused (one host synchronisation per call).
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
    for name, features in (("x", x), ("y", y)):
        if not bool(torch.isfinite(features).all()):
            raise InvalidParameterError(f"{name}: expected finite features, found NaN or infinity")
    use_gram = _gram_is_cheaper(n, x.shape[1], y.shape[1]) if method == "auto" else method == "gram"
    dtype = torch.promote_types(x.dtype, y.dtype)
    with torch.autocast(device_type=x.device.type, enabled=False):
        x, y = x.to(dtype), y.to(dtype)
        x, y = x / _unit_scale(x), y / _unit_scale(y)
        return _LinearCKA.apply(x, y, bool(debiased), use_gram)


def expected_biased_cka_independent(batch_size: int, dim_x: int, dim_y: int) -> float:
    """Expected biased linear CKA of independent isotropic Gaussian features (docs/THEORY.md S8).

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


def label_complement(labels: Tensor, rank_tolerance: float | None = None) -> Tensor:
    """An orthonormal basis ``U`` (n x (n - r)) of the complement of the centred labels' column
    space (rank ``r``), rotated so that ``U^T 1 = sqrt(n / (n - r)) 1``; ``I`` when ``r = 0``.

    The centred columns are scaled to unit norm (so labels of different units count alike) and
    their rank is read from the SVD: singular values above ``rank_tolerance`` times the largest
    (default ``max(n, L)`` times the machine epsilon of the labels' dtype, numpy's ``matrix_rank``
    rule), so collinear columns (one-hot, class histograms that sum to one) and classes absent from
    the batch remove nothing twice. The complement comes from a complete QR; a Householder
    reflection ``H`` maps its ``V^T 1`` onto the constant vector of the same norm, so the rows of
    ``U^T X`` keep a common mean (what the debiased estimator's invariance to a shift needs).
    Computed in float64.
    """
    n = labels.shape[0]
    eps = torch.finfo(labels.dtype if labels.is_floating_point() else torch.float64).eps
    values = labels.detach().to(torch.float64)
    centred = values - values.mean(dim=0, keepdim=True)
    norms = torch.linalg.vector_norm(centred, dim=0)
    scale = norms.max() if norms.numel() else norms.new_zeros(())
    varying = norms > max(n, 1) * eps * torch.clamp(scale, min=1.0)
    eye = torch.eye(n, dtype=torch.float64, device=labels.device)
    if not bool(varying.any()):
        return eye
    centred = centred[:, varying] / norms[varying]
    left, singular, _ = torch.linalg.svd(centred, full_matrices=False)
    tolerance = max(n, centred.shape[1]) * eps if rank_tolerance is None else rank_tolerance
    rank = int((singular > tolerance * singular[0]).sum())
    complete, _ = torch.linalg.qr(left[:, :rank], mode="complete")
    complement = complete[:, rank:]
    ones = torch.ones(n, dtype=torch.float64, device=labels.device)
    current = complement.T @ ones
    wanted = torch.full_like(current, math.sqrt(n / complement.shape[1]))
    reflection = current - wanted
    size = reflection.square().sum()
    if float(size) > (n * eps) ** 2:
        complement = complement - 2 * torch.outer(complement @ reflection, reflection) / size
    return complement


def conditional_linear_cka(
    x: Tensor,
    y: Tensor,
    labels: Tensor,
    debiased: bool = True,
    maps: str = "pool",
    rank_tolerance: float | None = None,
) -> Tensor:
    """Linear CKA of ``x`` and ``y`` after partialling out ``labels`` (B, L) (docs/THEORY.md S13).

    With ``U`` from :func:`label_complement` (orthonormal, orthogonal to the centred labels), the
    estimate is ``CKA(U^T x, U^T y)``: the features' components that the labels explain linearly
    (with an intercept) are removed, and what is left is expressed in ``n - r`` coordinates. If the
    rows are i.i.d. given the labels and ``x``, ``y`` are conditionally independent given them
    with a conditional mean linear in the label matrix, then ``E[U^T X X^T U] = tr(Cov(x | y)) I``:
    the rotated rows are uncorrelated with a common covariance (and i.i.d. for Gaussian noise), so
    every term of the debiased HSIC, bilinear in the two kernels with their diagonals removed,
    has mean zero, and the debiased estimate is centred at zero. Residuals ``(I - P) x`` taken in
    the original n coordinates are not: their kernel has mean ``tr(Cov) (I - P)``, off-diagonal,
    and the debiased CKA of such residuals is biased upwards (0.032 at batch 64 with 8 one-hot
    classes and 16 + 16 features, 25 standard errors above zero). With ``L = 0`` or constant
    labels ``U = I`` and the estimate is :func:`linear_cka`'s exactly.

    The gradient flows into ``x`` and ``y`` (``U`` depends on the labels only). Refused: labels of
    another batch size or not finite, and a batch with fewer than 4 samples beyond the labels'
    rank (the debiased estimator needs 4 rows).
    """
    x = as_feature_matrix(x, maps, "x")
    y = as_feature_matrix(y, maps, "y")
    if labels.ndim == 1:
        labels = labels[:, None]
    if labels.ndim != 2 or labels.shape[0] != x.shape[0]:
        raise InvalidParameterError(
            f"labels: expected a (B, L) label matrix with B = {x.shape[0]}, got shape "
            f"{tuple(labels.shape)}"
        )
    if labels.is_floating_point() and not bool(torch.isfinite(labels).all()):
        raise InvalidParameterError("labels: expected finite labels, found NaN or infinity")
    complement = label_complement(labels, rank_tolerance)
    n, kept = complement.shape
    if kept < 4:
        raise InvalidParameterError(
            f"labels: partialling out {n - kept} label direction(s) leaves {kept} of the batch's "
            f"{n} samples; the conditional CKA needs a batch of at least {n - kept + 4}"
        )
    dtype = torch.promote_types(x.dtype, y.dtype)
    basis = complement.to(dtype=dtype, device=x.device).T
    return linear_cka(basis @ x.to(dtype), basis @ y.to(dtype), debiased=debiased)
