"""What every multi-task model of the toolkit returns from ``forward``.

The trainer, the balancers and the probes read this one structure, so a model is free in how it is
built (dual-stream, MTAN, MT-CRL, ...) as long as it fills these fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


def _vectors(features: Tensor) -> Tensor:
    """Vectors unchanged; maps ``(B, C, H, W)`` averaged over positions to ``(B, C)``."""
    return features.flatten(2).mean(dim=2) if features.ndim > 2 else features


@dataclass
class Forward:
    """Outputs of one forward pass.

    - ``predictions``: one tensor per task name.
    - ``shared``: the last shared representation before the task-specific parts; gradient
      aggregators differentiate the task losses with respect to it, and the alignment probe
      measures ``cos^2(g_task, g_res)`` there.
    - ``z_s``, ``z_r``: semantic and residual streams of a dual-stream model (vectors ``(B, d)`` or
      maps ``(B, C, H, W)``), ``None`` for single-stream baselines.
    - ``extras``: anything model-specific (reconstructions, attention maps, ...). Keys the
      probes read: ``"features"`` (the shared features when ``shared`` is something else: MTAN's
      last stage output, the encoder output of CORE-MTL with heads on both streams),
      ``"modules"`` and ``"module_sizes"`` (MT-CRL's pooled module outputs and their widths),
      ``"routing"`` (MT-CRL's ``(T, M)`` edge probabilities), ``"attended/<task>"`` (what an MTAN
      head reads), ``"trunk/<task>"`` (a single-task model's features).
    """

    predictions: dict[str, Tensor]
    shared: Tensor
    z_s: Tensor | None = None
    z_r: Tensor | None = None
    extras: dict[str, Tensor] = field(default_factory=dict)

    def representations(self) -> dict[str, Tensor]:
        """What each representation of this pass holds, as per-sample vectors ``(B, d)`` (maps
        averaged over positions), for probes:

        - ``"Z"``: the shared features the task-specific parts build on: the backbone output for
          hard sharing and Rep-MTL (for a capacity control, the output of its extra layers), the
          encoder output ``F`` before the split for CORE-MTL, ``[h_1; ...; h_M]`` for MT-CRL,
          the last shared stage output ``p_L`` for MTAN, the task trunks' outputs side by side
          for single-task models;
        - ``"Z_s"``, ``"Z_r"``: CORE-MTL's streams;
        - ``"module/<m>"``: MT-CRL's module ``m``; ``"routing"``: its ``(T, M)`` edge
          probabilities (the one entry that is not per sample);
        - ``"attended/<task>"``: MTAN's attended features ``ahat_L^t``, what task ``t``'s head
          reads; ``"trunk/<task>"``: a single-task model's features for task ``t``.
        """
        found = {"Z": _vectors(self.extras.get("features", self.shared))}
        if self.z_s is not None and self.z_r is not None:
            found.update(Z_s=_vectors(self.z_s), Z_r=_vectors(self.z_r))
        if "modules" in self.extras and "module_sizes" in self.extras:
            sizes = [int(size) for size in self.extras["module_sizes"]]
            for index, piece in enumerate(self.extras["modules"].split(sizes, dim=1)):
                found[f"module/{index}"] = piece
        if "routing" in self.extras:
            found["routing"] = self.extras["routing"]
        for key, value in self.extras.items():
            if key.startswith(("attended/", "trunk/")):
                found[key] = _vectors(value)
        return found
