"""A plain multilayer perceptron, the vector trunk of the synthetic studies."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

from torch import nn

from scm.validation import InvalidParameterError


def mlp(
    widths: Sequence[int],
    activation: Callable[[], nn.Module] = nn.ReLU,
    activate_last: bool = True,
) -> nn.Sequential:
    """``Linear(widths[0], widths[1]) -> act -> ... -> Linear(widths[-2], widths[-1]) [-> act]``."""
    widths = list(widths)
    if len(widths) < 2 or not all(isinstance(w, int) and w >= 1 for w in widths):
        raise InvalidParameterError(
            f"widths: expected at least two positive integers, got {widths!r}"
        )
    layers: list[nn.Module] = []
    for index, (width_in, width_out) in enumerate(itertools.pairwise(widths)):
        layers.append(nn.Linear(width_in, width_out))
        if activate_last or index < len(widths) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)
