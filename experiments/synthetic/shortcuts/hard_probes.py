"""What the streams hold on study 9's rendered scenes, against the scenes' own truth.

The scenes renderer (:mod:`experiments.vision.scenes`) knows every residual factor: the albedo of
each slot (the floor is slot :data:`FLOOR_SLOT`, in every image), the order-2 SH lighting, and per pixel the albedo, shading and normal maps, while the
segmentation names the slot of each pixel. On shortcut-free images (the target law, the suite's probe splits, where the floor's colour
varies independently of the layout),
:func:`hard_probes` measures, with the generic probes of :mod:`coremtl.intrinsic_probes`:

- albedo: the held-out linear-probe ``R^2`` of the floor's linear albedo (RGB) from pooled ``Z_r``
  and, against it, from pooled ``Z_s`` (``floor_albedo_r2/residual``, ``/semantic``);
- lighting: the same for the 27 SH coefficients (``lighting_r2/...``);
- for a hard-grounding model, the decoded albedo, shading and normals against the true maps on
  the floor, on the objects and on every surface (``albedo/floor/si_mse``, ...,
  ``normal/surface/angle``, each with its references: what knows nothing of the decomposition,
  what the streams' resolution allows, and for normals the angle after the best orthogonal map
  of the frame, which a render without a normal task cannot fix; the floor is flat, so its
  shading is one value per image and its constant-shading reference is exact).

The probe fits on one split and is scored on another (``probe_fit``, ``probe_eval`` of
:class:`~experiments.synthetic.shortcuts.scenes.SceneBenchmark`, which carry the truth).
"""

from __future__ import annotations

from torch import Tensor, nn

FLOOR_SLOT = 0
"""The floor's class and slot in every rendered scene (the scenes' plane class)."""



def hard_probes(model: nn.Module, fit: dict[str, Tensor], held_out: dict[str, Tensor]) -> dict:
    """The measurements of the module docstring of a dual-stream ``model`` (the decomposition
    errors only when its decoder is a hard-grounding one) on two shortcut-free splits of the scenes
    benchmark (inputs under ``x``, the truth under ``segmentation``, ``albedo``, ``shading``,
    ``normal``, ``floor_albedo``, ``lighting``)."""
    from coremtl.hard_grounding import HardGroundingDecoder
    from coremtl.intrinsic_probes import decomposition_errors, pooled_streams, ridge_r2

    fit_s, fit_r = pooled_streams(model, fit["x"])
    eval_s, eval_r = pooled_streams(model, held_out["x"])
    out: dict[str, float] = {}
    for target in ("floor_albedo", "lighting"):
        for stream, fit_z, eval_z in (("semantic", fit_s, eval_s), ("residual", fit_r, eval_r)):
            out[f"{target}_r2/{stream}"] = ridge_r2(fit_z, fit[target], eval_z, held_out[target])
    if isinstance(getattr(model, "decoder", None), HardGroundingDecoder):
        labels = held_out["segmentation"]
        regions = {
            "floor": labels == FLOOR_SLOT,
            "objects": labels > FLOOR_SLOT,
            "surface": labels >= 0,
        }
        truth = {key: held_out[key] for key in ("albedo", "shading", "normal")}
        out.update(decomposition_errors(model, held_out["x"], truth, regions))
    return out
