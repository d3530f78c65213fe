"""Counterfactual residual swapping (CFA): give sample ``i`` the residual of sample ``pi(i)``.

``pi`` is a uniformly random derangement of the batch (no sample keeps its own residual). Two
variants produce predictions for the counterfactual samples, to be scored against the original
labels of sample ``i``:

- input level (``"input"``, the paper's CFA and the default): ``x_cf(i) = decoder(Z_s(i),
  Z_r(pi(i)))``, detached, then re-encoded ``yhat(i) = heads(Z_s(x_cf(i)))`` with batch-norm
  layers in eval mode (their running statistics untouched, every other layer in its own mode).
  The loss reaches the encoder through the re-encoding: it is trained so that the residual the
  decoder painted in does not move ``Z_s``;
- feature level (``"feature"``, a named option), without a decoder: the shared features are edited minimally so that their
  residual stream becomes ``Z_r(pi(i))`` (:meth:`coremtl.representation.StreamSplit.substitute_residual`),
  detached, and split again: ``yhat(i) = heads(W_s F'(i) + b_s)``. Swapping ``Z_r`` after the split
  and feeding the heads would change nothing, since heads read ``Z_s`` alone; the edit in feature
  space is what lets the swap reach ``Z_s`` where the split leaks. The edited features are built
  under ``no_grad``, so this variant trains the split and the heads and gives the encoder no
  gradient at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from scm.validation import InvalidParameterError

CFA_MODES = ("feature", "input")


def derangement(n: int, generator: torch.Generator | None = None, device=None) -> Tensor:
    """A uniformly random permutation of ``0..n-1`` without fixed points (``pi(i) != i``).

    Rejection sampling: uniform permutations are drawn until one has no fixed point, which keeps
    the law uniform over derangements; the acceptance probability is ``D_n / n! -> 1/e``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise InvalidParameterError(f"n: a derangement needs at least 2 elements, got {n!r}")
    identity = torch.arange(n)
    while True:
        permutation = torch.randperm(n, generator=generator)
        if not bool((permutation == identity).any()):
            return permutation.to(device) if device is not None else permutation


@contextmanager
def frozen_batchnorm(module: nn.Module) -> Iterator[nn.Module]:
    """Put every batch-norm layer of ``module`` in eval mode for the duration of the block.

    In eval mode batch norm normalises with its running statistics and does not update them; all
    other layers keep their mode. The previous modes are restored on exit.
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    modes = [m.training for m in norms]
    try:
        for norm in norms:
            norm.eval()
        yield module
    finally:
        for norm, mode in zip(norms, modes, strict=True):
            norm.train(mode)


def _semantic_of_input(model: nn.Module, x: Tensor) -> Tensor:
    """``Z_s(x)``, without computing ``Z_r`` when the model can (``encode_semantic``)."""
    encode_semantic = getattr(model, "encode_semantic", None)
    return encode_semantic(x) if encode_semantic is not None else model.encode(x)[0]


def _semantic_of_features(split: nn.Module, features: Tensor) -> Tensor:
    """``Z_s`` of shared features, without computing ``Z_r`` when the split can (``semantic``)."""
    semantic = getattr(split, "semantic", None)
    return semantic(features) if semantic is not None else split(features)[0]


def input_counterfactual_predictions(
    model: nn.Module, z_s: Tensor, z_r: Tensor, permutation: Tensor
) -> dict[str, Tensor]:
    """``heads(Z_s(decode(Z_s(i), Z_r(pi(i))).detach()))`` with batch norm frozen throughout
    (the model's whole forward when its heads also read pre-split features, as in the
    skip-connection ablation)."""
    with frozen_batchnorm(model):
        with torch.no_grad():
            counterfactual = model.decode(z_s, z_r[permutation])
        if getattr(model, "heads_read_pre_split_features", False):
            return model(counterfactual).predictions
        return model.predict(_semantic_of_input(model, counterfactual))


def feature_counterfactual_predictions(
    model: nn.Module, shared: Tensor, z_r: Tensor, permutation: Tensor
) -> dict[str, Tensor]:
    """``heads(Z_s(F'))`` with ``F'`` the shared features of ``i`` edited to carry ``Z_r(pi(i))``
    (``z_r`` is the residual stream of ``shared``)."""
    with torch.no_grad():
        edited = model.split.substitute_residual(shared, z_r[permutation], current=z_r)
    return model.predict(_semantic_of_features(model.split, edited))


def counterfactual_predictions(
    model: nn.Module,
    shared: Tensor,
    z_s: Tensor,
    z_r: Tensor,
    permutation: Tensor,
    mode: str = "input",
) -> dict[str, Tensor]:
    """Predictions for the counterfactual batch in ``mode`` ``'input'`` or ``'feature'``."""
    if mode == "input":
        return input_counterfactual_predictions(model, z_s, z_r, permutation)
    if mode == "feature":
        return feature_counterfactual_predictions(model, shared, z_r, permutation)
    raise InvalidParameterError(f"cfa_mode: expected one of {CFA_MODES}, got {mode!r}")
