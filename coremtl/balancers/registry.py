"""Every balancer by its configuration name: :data:`BALANCERS` is the one list.

``make_balancer(name, task_names, **options)`` builds one; ``balancer_options(name)`` gives the
options it accepts with their defaults. A method's module is imported only when it is built, so
importing the registry does not import torchjd.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from coremtl.balancers.base import Balancer
from scm.validation import InvalidParameterError

BALANCERS: dict[str, str] = {
    "ew": "coremtl.balancers.scalarizers:EqualWeighting",
    "gradnorm": "coremtl.balancers.gradnorm:GradNorm",
    "pcgrad": "coremtl.balancers.aggregators:PCGrad",
    "mgda": "coremtl.balancers.aggregators:MGDA",
    "cagrad": "coremtl.balancers.aggregators:CAGrad",
    "nashmtl": "coremtl.balancers.nashmtl:NashMTL",
    "imtl": "coremtl.balancers.aggregators:IMTLG",
    "fairgrad": "coremtl.balancers.aggregators:FairGrad",
    "alignedmtl": "coremtl.balancers.aggregators:AlignedMTL",
    "upgrad": "coremtl.balancers.aggregators:UPGrad",
    "dualproj": "coremtl.balancers.aggregators:DualProj",
    "gradvac": "coremtl.balancers.gradvac:GradVac",
    "graddrop": "coremtl.balancers.aggregators:GradDrop",
    "config": "coremtl.balancers.aggregators:ConFIG",
    "uw": "coremtl.balancers.uw:UncertaintyWeighting",
    "dwa": "coremtl.balancers.dwa:DynamicWeightAverage",
    "rlw": "coremtl.balancers.scalarizers:RandomLossWeighting",
    "stch": "coremtl.balancers.scalarizers:STCH",
    "famo": "coremtl.balancers.famo:FAMO",
    "gls": "coremtl.balancers.scalarizers:GeometricLossStrategy",
}
"""Configuration name -> ``module:class`` of its :class:`Balancer`."""

BALANCER_NAMES: tuple[str, ...] = tuple(BALANCERS)

COMMON_OPTIONS: tuple[str, ...] = ("device",)
"""Options every balancer accepts: ``device`` places learnable parameters and buffers."""


def check_balancer_name(name: str) -> None:
    if name not in BALANCERS:
        raise InvalidParameterError(
            f"balancer: unknown name {name!r}; expected one of {', '.join(BALANCER_NAMES)}"
        )


def balancer_class(name: str) -> type[Balancer]:
    """The class of balancer ``name`` (its module is imported here)."""
    check_balancer_name(name)
    module_name, class_name = BALANCERS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def balancer_options(name: str) -> dict[str, Any]:
    """The options (with their defaults) of balancer ``name``, besides the common ones."""
    return balancer_class(name).option_defaults()


def make_balancer(name: str, task_names: Sequence[str], **options: Any) -> Balancer:
    """Build balancer ``name`` for the tasks ``task_names``.

    Unknown names and options raise :class:`InvalidParameterError` naming them and listing the
    valid ones; ``balancer_options(name)`` gives the options and defaults.
    """
    cls = balancer_class(name)
    valid = cls.option_defaults()
    unknown = sorted(set(options) - set(valid) - set(COMMON_OPTIONS))
    if unknown:
        listing = ", ".join([*sorted(valid), *COMMON_OPTIONS])
        raise InvalidParameterError(
            f"balancer {name!r}: unknown option(s) {', '.join(unknown)}; valid options: {listing}"
        )
    device = options.pop("device", None)
    balancer = cls(task_names, **options)
    if device is not None:
        balancer.to(device)
    return balancer
