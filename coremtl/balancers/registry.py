"""``make_balancer(name, task_names, **options)``: every balancer by its configuration name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from coremtl.balancers.base import Balancer
from scm.validation import InvalidParameterError

BALANCER_NAMES: tuple[str, ...] = (
    "ew",
    "gradnorm",
    "pcgrad",
    "mgda",
    "cagrad",
    "nashmtl",
    "imtl",
    "fairgrad",
    "alignedmtl",
    "upgrad",
    "dualproj",
    "gradvac",
    "graddrop",
    "config",
    "uw",
    "dwa",
    "rlw",
    "stch",
    "famo",
    "gls",
)

COMMON_OPTIONS: tuple[str, ...] = ("device",)
"""Options every balancer accepts: ``device`` places learnable parameters and buffers."""


def balancer_options(name: str) -> dict[str, Any]:
    """The options (with their defaults) of balancer ``name``, besides the common ones."""
    check_balancer_name(name)
    if name == "gradnorm":
        from coremtl.balancers.gradnorm import GRADNORM_OPTIONS

        return dict(GRADNORM_OPTIONS)
    from coremtl.balancers.torchjd_adapter import method_options

    return method_options(name)


def check_balancer_name(name: str) -> None:
    if name not in BALANCER_NAMES:
        raise InvalidParameterError(
            f"balancer: unknown name {name!r}; expected one of {', '.join(BALANCER_NAMES)}"
        )


def make_balancer(name: str, task_names: Sequence[str], **options: Any) -> Balancer:
    """Build balancer ``name`` for the tasks ``task_names``.

    Unknown names and options raise :class:`InvalidParameterError` naming them and listing the
    valid ones; ``balancer_options(name)`` gives the options and defaults.
    """
    valid = balancer_options(name)
    unknown = sorted(set(options) - set(valid) - set(COMMON_OPTIONS))
    if unknown:
        listing = ", ".join([*sorted(valid), *COMMON_OPTIONS])
        raise InvalidParameterError(
            f"balancer {name!r}: unknown option(s) {', '.join(unknown)}; valid options: {listing}"
        )
    device = options.pop("device", None)
    if name == "gradnorm":
        from coremtl.balancers.gradnorm import GradNorm

        balancer: Balancer = GradNorm(task_names, **options)
    else:
        from coremtl.balancers.torchjd_adapter import make_torchjd_balancer

        balancer = make_torchjd_balancer(name, task_names, **options)
    if device is not None:
        balancer.to(device)
    return balancer
