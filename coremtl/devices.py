"""Device names, checked where they are given: one line naming the parameter when torch cannot
parse one, when its type is not among those asked for, or, when asked, when it is absent here."""

from __future__ import annotations

from collections.abc import Sequence

from scm.validation import InvalidParameterError

DEVICE_TYPES = ("cpu", "cuda", "mps")


def check_device(
    device: object,
    key: str = "device",
    types: Sequence[str] | None = None,
    available: bool = False,
) -> str:
    """``device`` if torch parses it (``cpu``, ``cuda``, ``cuda:1``, ``mps``, ...), its type is
    one of ``types`` (any when ``None``) and, with ``available``, this machine has it."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise InvalidParameterError(
            f"{key}: expected a torch device such as cpu, cuda or cuda:0, got {device!r}"
        ) from None
    if types is not None and parsed.type not in types:
        raise InvalidParameterError(
            f"{key}: expected a device of type {tuple(types)}, got {device!r}"
        )
    if available and parsed.type == "cuda" and not torch.cuda.is_available():
        raise InvalidParameterError(f"{key}: {device!r} asked but CUDA is unavailable")
    if available and parsed.type == "mps" and not torch.backends.mps.is_available():
        raise InvalidParameterError(f"{key}: {device!r} asked but MPS is unavailable")
    return str(device)
