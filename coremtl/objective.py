"""The CORE-MTL terms added to the (balanced) task losses.

Total loss (docs/VISION.md): ``sum_t w_t L_t + l_cka(step) L_cka + l_cfa L_cfa + l_rec L_rec`` with

- ``L_cka = max(0, CKA(Z_s, Z_r))``, the positive part of the linear CKA of the (pooled) streams,
  debiased by default (docs/THEORY.md S8), and the warm-up ramp
  ``l_cka(step) = l_cka min(1, step / cka_warmup_steps)`` (:func:`cka_penalty` says why the
  positive part). ``independence`` chooses the dependence measured: ``"unconditional"`` (the
  default, the paper's), ``"conditional"`` or ``"none"`` (no independence term). The conditional
  penalty (docs/THEORY.md S13) is the CKA after partialling out the batch's labels ``Y``
  (:func:`coremtl.label_matrix.label_matrix` of ``label_tasks``: one-hot classes, regression values,
  per-image class histograms or means of dense labels):

      L_cka = max(0, CKA(U^T Z_s, U^T Z_r)),   U an orthonormal basis of span([1, Y])^perp,

  (:func:`coremtl.cka.conditional_linear_cka`), logged as ``conditional_cka``. When the residual
  follows the labels in the source (``Z_r = A Y + E``) the unconditional CKA of the true streams
  is ``> 0`` and its minimum lies away from them, while the conditional one is zero there (S13); a
  correlation not carried by the labels biases both;
- ``L_cfa = (1/K) sum_t L_t(yhat_cf, y)``: the mean task loss of the counterfactual batch
  (:mod:`coremtl.counterfactual`) against the original labels, applied from ``cfa_start_step``
  on, with probability ``cfa_probability`` per step (a Bernoulli draw from the trainer's generator).
  ``cfa_mode="input"`` (the default) is the paper's CFA: decode, detach, re-encode with batch
  norm frozen, so the encoder is trained to ignore the swapped residual. ``cfa_mode="feature"``
  edits the shared features under ``no_grad`` instead: the split and the heads get a gradient, the
  encoder none;
- ``L_rec = mean |decoder(Z_s, Z_r) - x|`` (:mod:`coremtl.grounding`).

``terms`` returns the weighted terms that are active at ``step`` (zero weights are left out).
``CoreMTLObjective()`` with no arguments is the method: its defaults are those of
:mod:`coremtl.defaults`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from coremtl import defaults
from coremtl.authors import objective_settings
from coremtl.cka import conditional_linear_cka, linear_cka
from coremtl.counterfactual import CFA_MODES, counterfactual_predictions, derangement
from coremtl.forward import Forward
from coremtl.grounding import reconstruction_loss
from coremtl.label_matrix import label_matrix
from coremtl.tasks import Task, check_tasks
from scm.validation import InvalidParameterError

TaskLossesFn = Callable[[Mapping[str, Tensor], Mapping[str, Tensor]], dict[str, Tensor]]
INDEPENDENCE_MODES = ("unconditional", "conditional", "none")


def _non_negative(value: float, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{name}: expected a number >= 0, got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise InvalidParameterError(f"{name}: expected a finite number >= 0, got {value!r}")
    return number


def _non_negative_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidParameterError(f"{name}: expected an integer >= 0, got {value!r}")
    return value


def cka_penalty(estimate: Tensor) -> Tensor:
    """The independence penalty of a CKA estimate: its positive part ``max(0, CKA)``.

    Population CKA is ``>= 0`` and is zero exactly at independence of the (linear) streams. The
    debiased estimator (docs/THEORY.md S8) is unbiased for it, so its minibatch values scatter
    around the population value and go below zero when that value is near zero (study 1's
    CORE-MTL ended at -0.008). A negative estimate says "no dependence detected beyond batch
    noise"; minimising it further would only push the streams towards whatever makes this batch's
    noise negative. The penalty therefore has the full CKA gradient while the estimate is positive
    and none once it is at or below zero (``relu``, whose derivative at 0 is 0). For the biased
    estimator, which is never negative, the penalty is the estimate itself.

    The returned tensor's *value* is the raw estimate (so the logs show what was measured) while
    its *gradient* is that of ``max(0, CKA)``: ``relu(e) + (e - relu(e)).detach()``.
    """
    positive = torch.relu(estimate)
    return positive + (estimate - positive).detach()


@dataclass
class CoreMTLObjective:
    """Weights and schedule of the CKA, CFA and reconstruction terms (defaults:
    :mod:`coremtl.defaults`, the method as docs/VISION.md describes it).

    ``input_key`` names the batch entry holding the model input (reconstruction target and the
    decoded counterfactual's shape). ``cfa_mode``: ``"input"`` (decode and re-encode, the paper's
    CFA) or ``"feature"`` (features edited without a decoder; gives the encoder no gradient).
    ``independence``: one of :data:`INDEPENDENCE_MODES` (module docstring); ``label_tasks``: the
    tasks whose labels the conditional penalty partials out (:func:`coremtl.build` fills in the
    model's tasks when left empty).
    """

    cka_weight: float = defaults.CKA_WEIGHT
    cka_warmup_steps: int = defaults.CKA_WARMUP_STEPS
    cfa_weight: float = defaults.CFA_WEIGHT
    cfa_probability: float = defaults.CFA_PROBABILITY
    cfa_start_step: int = 0
    reconstruction_weight: float = defaults.RECONSTRUCTION_WEIGHT
    cfa_mode: str = defaults.CFA_MODE
    debiased_cka: bool = defaults.DEBIASED_CKA
    input_key: str = "x"
    independence: str = "unconditional"
    label_tasks: tuple[Task, ...] = ()

    def __post_init__(self) -> None:
        self.cka_weight = _non_negative(self.cka_weight, "cka_weight")
        self.cfa_weight = _non_negative(self.cfa_weight, "cfa_weight")
        self.reconstruction_weight = _non_negative(
            self.reconstruction_weight, "reconstruction_weight"
        )
        self.cka_warmup_steps = _non_negative_int(self.cka_warmup_steps, "cka_warmup_steps")
        self.cfa_start_step = _non_negative_int(self.cfa_start_step, "cfa_start_step")
        probability = _non_negative(self.cfa_probability, "cfa_probability")
        if probability > 1:
            raise InvalidParameterError(
                f"cfa_probability: expected a probability in [0, 1], got {self.cfa_probability!r}"
            )
        self.cfa_probability = probability
        if self.cfa_mode not in CFA_MODES:
            raise InvalidParameterError(
                f"cfa_mode: expected one of {CFA_MODES}, got {self.cfa_mode!r}"
            )
        if self.independence not in INDEPENDENCE_MODES:
            raise InvalidParameterError(
                f"independence: expected one of {INDEPENDENCE_MODES}, got {self.independence!r}"
            )
        self.label_tasks = check_tasks(self.label_tasks) if self.label_tasks else ()

    @classmethod
    def authors(
        cls,
        config: str = "cityscapes",
        epochs: int = 100,
        steps_per_epoch: int = 1,
        relative_to_tasks: bool = False,
        num_tasks: int | None = None,
    ) -> CoreMTLObjective:
        """The authors' configuration ``config`` (a file of GitHub ``Hope-Rita/CORE-MTL``,
        ``configs/resnet/``) translated to this objective for a run of ``epochs`` epochs of
        ``steps_per_epoch`` steps: plain linear CKA at their ``lambda_independence`` (1.0; 0.1
        for GTA5 -> Cityscapes; 0.5 for CelebA) with their ramp, CFA at their ``lambda_cfa`` and
        ``prob`` from their start epoch, the L1 reconstruction at ``beta_recon_app *
        lambda_l1_recon``; with ``relative_to_tasks`` the weights keep their ratio to the task
        losses (``num_tasks`` needed). Their stages: :func:`coremtl.authors.stages`. The values,
        the files and what is not carried over: :mod:`coremtl.authors`."""
        return cls(
            **objective_settings(config, epochs, steps_per_epoch, relative_to_tasks, num_tasks)
        )

    def config(self) -> dict:
        """The settings as a JSON-serialisable dict."""
        return asdict(self)

    def cka_weight_at(self, step: int) -> float:
        """``l_cka min(1, step / cka_warmup_steps)`` (the full weight without warm-up)."""
        if self.cka_warmup_steps == 0:
            return self.cka_weight
        return self.cka_weight * min(1.0, step / self.cka_warmup_steps)

    def terms(
        self,
        model: nn.Module,
        batch: Mapping[str, Tensor],
        forward: Forward,
        step: int,
        task_losses_fn: TaskLossesFn | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """The weighted terms ``cka`` (or ``conditional_cka``), ``cfa``, ``reconstruction`` active
        at ``step`` (the independence term's value is the weighted raw estimate, its gradient that
        of the positive part, :func:`cka_penalty`)."""
        terms: dict[str, Tensor] = {}
        cka_weight = self.cka_weight_at(step) if self.independence != "none" else 0.0
        if cka_weight > 0:
            if forward.z_s is None or forward.z_r is None:
                raise InvalidParameterError("forward: the CKA term needs a model with z_s and z_r")
            z_s, z_r = forward.z_s.float(), forward.z_r.float()
            if self.independence == "conditional":
                labels = label_matrix(batch, self.label_tasks)
                cka = conditional_linear_cka(z_s, z_r, labels, debiased=self.debiased_cka)
                terms["conditional_cka"] = cka_weight * cka_penalty(cka)
            else:
                cka = linear_cka(z_s, z_r, debiased=self.debiased_cka)
                terms["cka"] = cka_weight * cka_penalty(cka)
        if self.reconstruction_weight > 0:
            reconstruction = forward.extras.get("reconstruction")
            if reconstruction is None:
                reconstruction = model.decode(forward.z_s, forward.z_r)
            target = batch[self.input_key]
            terms["reconstruction"] = self.reconstruction_weight * reconstruction_loss(
                reconstruction.float(), target.float()
            )
        if self.cfa_weight > 0 and step >= self.cfa_start_step:
            draw = torch.rand((), generator=generator).item()
            if draw < self.cfa_probability:
                if task_losses_fn is None:
                    raise InvalidParameterError(
                        "task_losses_fn: the CFA term needs the per-task loss function"
                    )
                permutation = derangement(forward.z_s.shape[0], generator).to(forward.z_s.device)
                predictions = counterfactual_predictions(
                    model, forward.shared, forward.z_s, forward.z_r, permutation, self.cfa_mode
                )
                losses = task_losses_fn(predictions, batch)
                terms["cfa"] = self.cfa_weight * torch.stack(list(losses.values())).mean()
        return terms
