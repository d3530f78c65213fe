"""The authors' configuration of CORE-MTL, as their files give it, and its translation to the
library's objective and schedule.

Provenance: GitHub ``Hope-Rita/CORE-MTL`` (commit ``c4678df``), the YAML files of
``configs/resnet/`` read by ``engine/trainer.py``, ``engine/trainer_cls.py``,
``losses/composite_loss.py``, ``losses/celeba_loss.py`` and ``losses/linear_cka.py``:

| file | ``lambda_independence`` | stages 0 / 1, CKA ramp (epochs) | CFA ``lambda_cfa`` / ``prob`` / ``start_epoch`` | ``beta_recon_app`` x ``lambda_l1_recon`` | task weights |
|---|---|---|---|---|---|
| ``1causal_nyu.yaml`` | 1.0 | 5 / 0, 10 | 1.0 / 0.5 / 20 | 15 x 2 | seg 20, depth 10, normal 10 |
| ``2causal_cityscapes.yaml`` | 1.0 | 10 / 5, 20 | 1.0 / 0.5 / 20 | 15 x 2 | seg 10, depth 20 |
| ``3gta2cityscapes.yaml`` | 0.1 | 10 / 5, 30 | 0.5 / 0.5 / 35 | 2 x 2 | seg 30, depth 25 |
| ``4cityscapes_c.yaml`` | 1.0 | 10 / 5, 20 | 1.0 / 0.5 / 1 | 5 x 2 | seg 10, depth 20 |
| ``5celeba.yaml`` | 0.5 | none | none | 5 x 1 | one BCE over 10 attributes, 1.0 |

All run 100 epochs (CelebA 50), AdamW at ``2e-4`` with weight decay ``1e-4``. What the files and
the code that reads them mean:

- **CKA**: ``LinearCKA``, the plain (biased) linear CKA of the pooled streams, minimised as is.
  Stage 0 (``stage0_epochs``) trains the decomposition alone, task heads frozen and task losses
  zero; stage 1 (``stage1_epochs``) adds the tasks; the CKA weight is zero in stages 0 and 1 and
  from stage 2 on is ``lambda_independence * min(1, (epoch - stage0) / ind_warmup_epochs)``, a
  per-epoch ramp counted from the end of stage 0, so stage 2 starts part-way up it
  (Cityscapes: at 5/20 of the weight, full at epoch 30). CelebA: CKA at 0.5 from the first
  step, no stages, no ramp.
- **CFA**: from ``max(start_epoch, stage0 + stage1)`` with probability ``prob`` per step,
  ``lambda_cfa * (L_task(cf) + 0.1 CKA(cf))`` with ``L_task`` the same task-weighted sum as the
  main loss, the residual code of a random permutation (not a derangement) of the batch, pooled
  to a vector (``mix_strategy: global``), decoded, re-encoded with the model in eval mode. The
  ``cka_threshold`` key is read by no code. No CFA for CelebA.
- **Reconstruction**: ``beta_recon_app * (LPIPS + lambda_l1_recon * L1)`` of a generic
  (AdaIN) decoder of both streams, the soft grounding; on the dense sets beside it the hard
  grounding: ``lambda_img`` (2 NYUv2, 5 otherwise) times the L1 of the albedo-times-shading
  render, ``alpha_recon_geom`` (2, 5 for GTA5) times the L1 of depth decoded from ``Z_s``, and
  the priors ``lambda_alb_tv``, ``lambda_sh_gray``, ``lambda_xcov``.
- **Task losses** carry weights of 10 to 30 on the dense sets (``lambda_seg`` and so on), so the
  terms' weights are small next to them; CelebA's single loss is the mean over its 10 attributes.

The translation (:func:`objective_settings`, :func:`stages`) to the library's soft-grounding
preset, for a run of ``E`` epochs of ``S`` steps (the authors' epochs scaled by ``f = E / E_a``):
plain CKA (``debiased_cka=False``) at ``lambda_independence``; the stages ``ceil(f stage0)`` and
``ceil(f (stage0 + stage1))``; the CKA ramp ending at epoch ``f (stage0 + ind_warmup)``; CFA at
``lambda_cfa`` with ``prob``, from epoch ``f max(start_epoch, stage0 + stage1)``; the L1
reconstruction at ``beta_recon_app * lambda_l1_recon``. With ``relative_to_tasks`` the term
weights are divided by the mean weight ``w`` the authors give one task's loss (NYUv2 13.3,
Cityscapes and Cityscapes-C 15, GTA5 27.5, CelebA 0.1 per attribute), which keeps their ratio to
the task losses as in the authors' runs (the library's Equal Weighting sums unit-weight losses),
and the CFA weight is multiplied by the number of tasks ``K`` (the library's CFA term is a mean
over the tasks, the authors' a sum). Not carried over: the LPIPS term, the hard grounding and its
priors, the unequal task weights, the ``0.1 CKA(cf)`` inside CFA, the ramp's start part-way up
(the library's ramp starts at zero when the stage does) and its per-epoch steps, the learning-rate
warm-up (5 to 10 epochs) and floor (``min_lr_factor`` 0.01).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from coremtl import defaults
from scm.validation import InvalidParameterError


@dataclass(frozen=True)
class AuthorsConfig:
    """One file of ``configs/resnet/``: the values the translation uses (module docstring)."""

    file: str
    epochs: int
    cka_weight: float
    reconstruction_epochs: int
    task_only_epochs: int
    cka_warmup_epochs: int
    cfa_weight: float
    cfa_probability: float
    cfa_start_epoch: int
    appearance_weight: float
    l1_weight: float
    task_weight: float


AUTHORS_CONFIGS: dict[str, AuthorsConfig] = {
    "nyuv2": AuthorsConfig("1causal_nyu.yaml", 100, 1.0, 5, 0, 10, 1.0, 0.5, 20, 15.0, 2.0, 40 / 3),
    "cityscapes": AuthorsConfig(
        "2causal_cityscapes.yaml", 100, 1.0, 10, 5, 20, 1.0, 0.5, 20, 15.0, 2.0, 15.0
    ),
    "gta5_to_cityscapes": AuthorsConfig(
        "3gta2cityscapes.yaml", 100, 0.1, 10, 5, 30, 0.5, 0.5, 35, 2.0, 2.0, 27.5
    ),
    "cityscapes_c": AuthorsConfig(
        "4cityscapes_c.yaml", 100, 1.0, 10, 5, 20, 1.0, 0.5, 1, 5.0, 2.0, 15.0
    ),
    "celeba": AuthorsConfig("5celeba.yaml", 50, 0.5, 0, 0, 0, 0.0, 0.0, 0, 5.0, 1.0, 0.1),
}


def authors_config(name: str) -> AuthorsConfig:
    """The record of ``name`` (a key of :data:`AUTHORS_CONFIGS`)."""
    if name not in AUTHORS_CONFIGS:
        raise InvalidParameterError(
            f"authors_config: expected one of {', '.join(AUTHORS_CONFIGS)}, got {name!r}"
        )
    return AUTHORS_CONFIGS[name]


def _scale(config: AuthorsConfig, epochs: int) -> float:
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise InvalidParameterError(f"epochs: expected a positive integer, got {epochs!r}")
    return epochs / config.epochs


def stages(name: str, epochs: int) -> tuple[int, int]:
    """``(task_start, independence_start)`` of the authors' stages scaled to ``epochs``:
    ``ceil(f stage0)`` and ``ceil(f (stage0 + stage1))`` (refused in one line when a stage would
    start at or after the last epoch)."""
    config = authors_config(name)
    scale = _scale(config, epochs)
    task_start = math.ceil(scale * config.reconstruction_epochs)
    independence_start = math.ceil(scale * (config.reconstruction_epochs + config.task_only_epochs))
    defaults.check_stages(epochs, task_start, independence_start)
    return task_start, independence_start


def objective_settings(
    name: str,
    epochs: int,
    steps_per_epoch: int,
    relative_to_tasks: bool = False,
    num_tasks: int | None = None,
) -> dict[str, Any]:
    """The :class:`coremtl.objective.CoreMTLObjective` fields of the authors' configuration
    ``name`` for a run of ``epochs`` epochs of ``steps_per_epoch`` steps (module docstring);
    ``relative_to_tasks`` needs ``num_tasks``, the run's number of tasks."""
    config = authors_config(name)
    if isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, int):
        raise InvalidParameterError(
            f"steps_per_epoch: expected a positive integer, got {steps_per_epoch!r}"
        )
    if steps_per_epoch < 1:
        raise InvalidParameterError(
            f"steps_per_epoch: expected a positive integer, got {steps_per_epoch!r}"
        )
    scale = _scale(config, epochs)
    independence_start = stages(name, epochs)[1]
    ramp_end = scale * (config.reconstruction_epochs + config.cka_warmup_epochs)
    cfa_start = scale * max(
        config.cfa_start_epoch, config.reconstruction_epochs + config.task_only_epochs
    )
    divisor, cfa_factor = 1.0, 1.0
    if relative_to_tasks:
        if isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or num_tasks < 1:
            raise InvalidParameterError(
                f"num_tasks: relative_to_tasks needs the number of tasks, got {num_tasks!r}"
            )
        divisor, cfa_factor = config.task_weight, float(num_tasks)
    return {
        "cka_weight": config.cka_weight / divisor,
        "debiased_cka": False,
        "cka_warmup_steps": max(0, round((ramp_end - independence_start) * steps_per_epoch)),
        "cfa_weight": config.cfa_weight * cfa_factor,
        "cfa_probability": config.cfa_probability,
        "cfa_start_step": max(0, round((cfa_start - independence_start) * steps_per_epoch)),
        "reconstruction_weight": config.appearance_weight * config.l1_weight / divisor,
    }
