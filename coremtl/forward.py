"""What every multi-task model of the toolkit returns from ``forward``.

The trainer, the balancers and the probes read this one structure, so a model is free in how it is
built (dual-stream, MTAN, MT-CRL, ...) as long as it fills these fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class Forward:
    """Outputs of one forward pass.

    - ``predictions``: one tensor per task name.
    - ``shared``: the last shared representation before the task-specific parts; gradient
      aggregators differentiate the task losses with respect to it, and the alignment probe
      measures ``cos^2(g_task, g_res)`` there.
    - ``z_s``, ``z_r``: semantic and residual streams of a dual-stream model (vectors ``(B, d)`` or
      maps ``(B, C, H, W)``), ``None`` for single-stream baselines.
    - ``extras``: anything model-specific (reconstructions, attention maps, ...).
    """

    predictions: dict[str, Tensor]
    shared: Tensor
    z_s: Tensor | None = None
    z_r: Tensor | None = None
    extras: dict[str, Tensor] = field(default_factory=dict)
