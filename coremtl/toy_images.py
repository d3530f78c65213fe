"""A small generated image data set with a residual factor that can be made a shortcut.

:func:`coloured_squares` draws ``n`` RGB images of ``size x size`` pixels (default 16). Each holds
one or two squares (``count``: one in the left half, a second in the right half) with three
semantic factors, the three classification tasks, drawn independently and uniformly:

- ``count`` in {0: one square, 1: two squares};
- ``large`` in {0: side ``size // 4``, 1: side ``size // 2 - 1``};
- ``hollow`` in {0: filled, 1: only the outline};

and two residual factors that no task depends on: the squares' colour (one of four, ``colour``)
and their positions, plus a grey background level and pixel noise. ``shortcut`` ties the colour
to ``hollow``: with probability ``shortcut`` a sample's colour is ``2 hollow + b`` (``b`` a fair
bit), otherwise one of the four uniformly. At ``shortcut = 0`` colour and tasks are independent;
a source split with ``shortcut`` near 1 and a target split at 0 give an out-of-distribution test
in which a model that reads the colour for ``hollow`` loses accuracy.
"""

from __future__ import annotations

import torch
from torch import Tensor

from scm.validation import InvalidParameterError

PALETTE = torch.tensor([[0.9, 0.2, 0.2], [0.9, 0.6, 0.1], [0.2, 0.4, 0.9], [0.2, 0.8, 0.5]])
TASKS = ("count", "large", "hollow")


def _square(size: int, side: Tensor, top: Tensor, left: Tensor, hollow: Tensor) -> Tensor:
    """(n, size, size) masks of squares of ``side`` at ``(top, left)``, outlines where ``hollow``."""
    grid = torch.arange(size)
    rows = grid[None, :, None] - top[:, None, None]
    cols = grid[None, None, :] - left[:, None, None]
    extent = side[:, None, None]
    inside = (rows >= 0) & (rows < extent) & (cols >= 0) & (cols < extent)
    interior = (rows >= 1) & (rows < extent - 1) & (cols >= 1) & (cols < extent - 1)
    return inside & ~(hollow[:, None, None] & interior)


def coloured_squares(
    n: int, seed: int = 0, shortcut: float = 0.0, size: int = 16, noise: float = 0.05
) -> dict[str, Tensor]:
    """``{"x": (n, 3, size, size) images in [0, 1], "count", "large", "hollow": (n,) labels,
    "colour": (n,) the residual colour index}`` (see the module docstring)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidParameterError(f"n: expected a positive integer, got {n!r}")
    if not 0.0 <= shortcut <= 1.0:
        raise InvalidParameterError(f"shortcut: expected a probability in [0, 1], got {shortcut!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 12 or size % 2:
        raise InvalidParameterError(f"size: expected an even integer >= 12, got {size!r}")
    generator = torch.Generator().manual_seed(seed)

    def draw(high: Tensor | int) -> Tensor:
        return (torch.rand(n, generator=generator) * high).long()

    count, large, hollow = draw(2), draw(2), draw(2).bool()
    tied = torch.rand(n, generator=generator) < shortcut
    colour = torch.where(tied, 2 * hollow.long() + draw(2), draw(4))
    side = torch.where(large.bool(), size // 2 - 1, size // 4)
    half = size // 2
    first = _square(size, side, draw(size - side + 1), draw(half - side + 1), hollow)
    second = _square(size, side, draw(size - side + 1), half + draw(half - side + 1), hollow)
    mask = (first | (second & count.bool()[:, None, None])).float()[:, None]
    background = 0.1 + 0.3 * torch.rand(n, 1, 1, 1, generator=generator)
    paint = PALETTE[colour][:, :, None, None]
    pixels = background * (1 - mask) + paint * mask
    pixels = pixels + noise * torch.randn(pixels.shape, generator=generator)
    return {
        "x": pixels.clamp(0.0, 1.0),
        "count": count,
        "large": large,
        "hollow": hollow.long(),
        "colour": colour,
    }
