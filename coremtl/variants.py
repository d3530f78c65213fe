"""The options of :func:`coremtl.build` that make ablations and controls of a method.

- ``weights`` (CORE-MTL): ``"library"`` (:mod:`coremtl.defaults`), ``"authors"`` (the authors'
  configuration ``authors_config`` as their files give it, :mod:`coremtl.authors`) or
  ``"authors-relative"`` (the same, its term weights kept in their ratio to the task losses); the
  authors' stages come with it unless ``stages`` is given;
- ``heads_on`` (CORE-MTL, or its capacity control): ``"semantic"`` (heads read ``Z_s``, the
  method) or ``"both"`` (heads read ``[Z_s; Z_r]``, :class:`coremtl.representation.BothStreamsModel`);
- ``mtcrl`` (MT-CRL, or its capacity control): :class:`coremtl.architectures.mtcrl.MTCRLOptions`;
- ``capacity_of`` (a balancer): hard sharing on the extra layers of ``"core-mtl"``, ``"mt-crl"``
  or ``"mtan"`` (:mod:`coremtl.capacity`);
- ``without`` (CORE-MTL): terms of :data:`TERMS` switched off (weight 0) in whichever objective
  the run has (the library's, the authors', or the one given), so any configuration can be
  ablated one term at a time (:func:`switch_off`).

:func:`check_variant_options` refuses, in one line, an unknown value or an option given to a
method it does not apply to.
"""

from __future__ import annotations

from coremtl import authors
from coremtl.architectures.mtcrl import MTCRLOptions
from coremtl.balancers.registry import BALANCER_NAMES
from coremtl.capacity import CAPACITY_OF
from coremtl.objective import CoreMTLObjective
from scm.validation import InvalidParameterError

WEIGHTS = ("library", "authors", "authors-relative")
TERMS = ("cka", "cfa", "reconstruction")
"""The CORE-MTL terms that ``without`` can switch off."""
HEADS_ON = ("semantic", "both")


def check_variant_options(
    method: str,
    weights: str,
    heads_on: str,
    capacity_of: str | None,
    mtcrl: MTCRLOptions | None,
    objective: CoreMTLObjective | None,
    authors_config: str = "cityscapes",
    grounding: str = "soft",
) -> None:
    """One line for an option that does not exist or does not apply to ``method``."""
    if weights not in WEIGHTS:
        raise InvalidParameterError(f"weights: expected one of {WEIGHTS}, got {weights!r}")
    if heads_on not in HEADS_ON:
        raise InvalidParameterError(f"heads_on: expected one of {HEADS_ON}, got {heads_on!r}")
    if mtcrl is not None and not isinstance(mtcrl, MTCRLOptions):
        raise InvalidParameterError(
            f"mtcrl: expected coremtl.architectures.mtcrl.MTCRLOptions, got {type(mtcrl).__name__}"
        )
    if capacity_of is not None:
        if method not in BALANCER_NAMES:
            raise InvalidParameterError(
                f"capacity_of: a capacity control is hard sharing trained by a balancer; "
                f"method {method!r} is not a balancer"
            )
        if capacity_of not in CAPACITY_OF:
            raise InvalidParameterError(
                f"capacity_of: expected one of {', '.join(CAPACITY_OF)}, got {capacity_of!r}"
            )
    for value, default, name, owner in (
        (weights, "library", "weights", "core-mtl"),
        (heads_on, "semantic", "heads_on", "core-mtl"),
        (mtcrl, None, "mtcrl", "mt-crl"),
    ):
        if value != default and owner not in (method, capacity_of):
            raise InvalidParameterError(
                f"{name}: applies to method {owner!r} (or a capacity control of it), "
                f"not to {method!r}"
            )
    if weights == "library" and authors_config != "cityscapes":
        raise InvalidParameterError(
            f"authors_config: {authors_config!r} is read with weights='authors' or "
            "'authors-relative'; weights is 'library'"
        )
    if weights != "library" and capacity_of is not None:
        raise InvalidParameterError("weights: a capacity control has no CORE-MTL terms")
    if weights != "library" and objective is not None:
        raise InvalidParameterError(
            f"weights: {weights!r} sets the objective; give either weights or objective"
        )
    if heads_on == "both" and grounding == "hard":
        raise InvalidParameterError(
            "heads_on: hard grounding renders normals predicted from Z_s by the task heads; with "
            "heads on [Z_s; Z_r] use grounding='soft'"
        )
    if heads_on == "both" and objective is not None and objective.cfa_mode == "feature":
        raise InvalidParameterError(
            "heads_on: feature-level CFA edits Z_r behind heads that read Z_s alone; with heads "
            "on both streams use cfa_mode='input'"
        )


def authors_weights(
    weights: str,
    config: str,
    epochs: int,
    steps_per_epoch: int | None,
    num_tasks: int,
    stages: tuple[int, int] | None,
) -> tuple[CoreMTLObjective, tuple[int, int]]:
    """The authors' objective and stages (:mod:`coremtl.authors`) for this run."""
    if steps_per_epoch is None:
        raise InvalidParameterError(
            f"steps_per_epoch: weights={weights!r} schedules the CKA ramp and CFA in steps; "
            "give steps_per_epoch (coremtl.train does)"
        )
    objective = CoreMTLObjective.authors(
        config, epochs, steps_per_epoch, weights == "authors-relative", num_tasks
    )
    return objective, stages or authors.stages(config, epochs)


def check_without(method: str, without: tuple[str, ...]) -> tuple[str, ...]:
    """``without`` as a tuple of :data:`TERMS` in their order, or one line."""
    if isinstance(without, str) or not all(isinstance(t, str) for t in without):
        raise InvalidParameterError(
            f"without: expected a tuple of term names from {TERMS}, got {without!r}"
        )
    unknown = [term for term in without if term not in TERMS]
    if unknown:
        raise InvalidParameterError(f"without: expected terms of {TERMS}, got {unknown}")
    if without and method != "core-mtl":
        raise InvalidParameterError(f"without: switches off CORE-MTL's terms, not {method!r}'s")
    return tuple(term for term in TERMS if term in without)


def switch_off(objective: CoreMTLObjective | None, without: tuple[str, ...]) -> CoreMTLObjective:
    """``objective`` (None: the library's) with the weights of the terms ``without`` set to 0."""
    import dataclasses

    chosen = objective or CoreMTLObjective()
    return dataclasses.replace(chosen, **{f"{term}_weight": 0.0 for term in without})


def stages_without_grounding(
    stages: tuple[int, int] | None, chosen: tuple[int, int] | None, without: tuple[str, ...]
) -> tuple[int, int] | None:
    """The stages of a run ``without`` its terms: with reconstruction off there is no grounding
    stage, so a schedule that starts the tasks later (the authors') starts them at epoch 0, as the
    library does without grounding; ``chosen`` stages (the caller's) that would leave the first
    epochs with nothing to train are refused in one line."""
    if "reconstruction" not in without or stages is None or stages[0] == 0:
        return stages
    if chosen is not None:
        raise InvalidParameterError(
            f"stages: {tuple(chosen)} starts the tasks at epoch {chosen[0]}, and without "
            "reconstruction nothing trains before it; start the tasks at epoch 0"
        )
    return (0, stages[1])
