"""The CORE-MTL terms per stacked model: each function returns one value per model, ``(M,)``.

- :func:`positive_cka`: ``max(0, CKA_u(Z_s, Z_r))``, the positive part of the debiased linear CKA
  (unbiased HSIC, Song et al. 2012; the estimator of :func:`coremtl.cka.linear_cka`, docs/THEORY.md
  S8). The debiased estimate can go below zero; its positive part is what the penalty minimises,
  so the penalty stops pulling once the estimate says the streams are uncorrelated;
- :func:`conditional_cka`: the debiased linear CKA of the streams after partialling out the
  batch's labels (docs/THEORY.md S13; :func:`coremtl.cka.conditional_linear_cka`),
  ``CKA_u(U^T Z_s, U^T Z_r)`` with ``U`` (:func:`label_complements`) an orthonormal basis of
  ``span([1, Y])^perp``; its positive part is the label-conditional penalty;
- :func:`counterfactual_loss`: the paper's counterfactual augmentation at input level,
  ``x_cf(i) = decoder(Z_s(i), Z_r(pi(i)))`` (detached), re-encoded, scored against ``y_i``:
  ``L_cfa = (1/K) sum_t L_t(heads(Z_s(x_cf)), y)``; the gradient reaches the encoder through the
  re-encoding (:func:`coremtl.counterfactual.input_counterfactual_predictions`);
- :func:`reconstruction_loss`: ``mean |decoder(Z_s, Z_r) - x|`` (L1, :mod:`coremtl.grounding`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from scm.validation import InvalidParameterError


def squared_task_losses(predictions: Tensor, y: Tensor) -> Tensor:
    """``L_t = mean_i (yhat_it - y_it)^2`` per model and task: ``(M, K)``."""
    return (predictions - y).square().mean(dim=1)


def debiased_cka(x: Tensor, y: Tensor) -> Tensor:
    """Debiased linear CKA of ``x`` (M, n, p) and ``y`` (M, n, q) per model, ``(M,)``.

    With centred features, row norms ``d`` and their sums ``s``:
    ``S_ab = ||A^T B||_F^2 - kappa d_a . d_b + s_a s_b / m``, ``kappa = 1 + 2/(n-2)``,
    ``m = (n-1)(n-2)``, and ``CKA = S_xy / sqrt(S_xx S_yy)`` (0 when either input is constant).
    """
    n = x.shape[1]
    x = x - x.mean(dim=1, keepdim=True)
    y = y - y.mean(dim=1, keepdim=True)
    d_x, d_y = x.square().sum(dim=2), y.square().sum(dim=2)
    s_x, s_y = d_x.sum(dim=1), d_y.sum(dim=1)
    kappa, m = 1.0 + 2.0 / (n - 2), (n - 1) * (n - 2)

    def numerator(a, b, d_a, d_b, s_a, s_b):
        cross = torch.bmm(a.transpose(1, 2), b).square().sum(dim=(1, 2))
        return cross - kappa * (d_a * d_b).sum(dim=1) + s_a * s_b / m

    s_xy = numerator(x, y, d_x, d_y, s_x, s_y)
    s_xx = numerator(x, x, d_x, d_x, s_x, s_x)
    s_yy = numerator(y, y, d_y, d_y, s_y, s_y)
    product = s_xx * s_yy
    positive = product > torch.finfo(x.dtype).tiny
    return torch.where(positive, s_xy / torch.where(positive, product, 1.0).sqrt(), 0.0)


def positive_cka(z_s: Tensor, z_r: Tensor) -> Tensor:
    """``max(0, CKA_u(Z_s, Z_r))`` per model."""
    return debiased_cka(z_s, z_r).clamp(min=0.0)


def label_complements(labels: Tensor) -> Tensor:
    """``U`` per model, ``(M, n, n - r)``: :func:`coremtl.cka.label_complement` of each model's
    label matrix ``labels`` (M, n, L) (regression labels are their values). The models must share
    the labels' rank ``r``, and ``n - r >= 4`` (the debiased estimator needs 4 rows)."""
    from coremtl.cka import label_complement

    bases = [label_complement(labels[m]) for m in range(labels.shape[0])]
    kept = {basis.shape[1] for basis in bases}
    if len(kept) != 1:
        raise InvalidParameterError(
            f"labels: the batched conditional CKA needs the same label rank in every model, got "
            f"{sorted(labels.shape[1] - size for size in kept)}"
        )
    (size,) = kept
    if size < 4:
        raise InvalidParameterError(
            f"labels: partialling out {labels.shape[1] - size} label direction(s) leaves {size} of "
            f"the batch's {labels.shape[1]} samples; the conditional CKA needs at least 4"
        )
    return torch.stack(bases)


def conditional_cka(z_s: Tensor, z_r: Tensor, complements: Tensor) -> Tensor:
    """``CKA_u(U^T Z_s, U^T Z_r)`` per model, ``(M,)``, with ``U = complements``
    (:func:`label_complements` of the batch's labels)."""
    basis = complements.to(z_s).transpose(1, 2)
    return debiased_cka(basis @ z_s, basis @ z_r)


def gather_rows(values: Tensor, permutation: Tensor) -> Tensor:
    """``values[m, permutation[m, i]]`` for ``values`` (M, n, d) and ``permutation`` (M, n)."""
    return torch.gather(values, 1, permutation[..., None].expand(-1, -1, values.shape[2]))


def counterfactual_loss(model, z_s: Tensor, z_r: Tensor, permutation: Tensor, y: Tensor) -> Tensor:
    """``L_cfa`` per model (input level, decoder output detached), ``(M,)``."""
    with torch.no_grad():
        counterfactual = model.decode(z_s, gather_rows(z_r, permutation))
    predictions = model.predict(model.encode_semantic(counterfactual))
    return squared_task_losses(predictions, y).mean(dim=1)


def reconstruction_loss(model, z_s: Tensor, z_r: Tensor, x: Tensor) -> Tensor:
    """``mean |decoder(Z_s, Z_r) - x|`` per model, ``(M,)``."""
    return (model.decode(z_s, z_r) - x).abs().mean(dim=(1, 2))
