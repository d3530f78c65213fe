"""ImageNet weights for the encoder, from a user-given file or the torchvision cache only.

Nothing is downloaded: ``weights="auto"`` looks for ``<torch.hub.get_dir()>/checkpoints/<arch>-*.pth``
(where torchvision stores what it once downloaded); ``"random"`` keeps the random initialisation;
any other value is the path of a state dict. With ``"auto"`` and no cached file, the run stops with
one line saying where the file was expected and how to proceed.
"""

from __future__ import annotations

from pathlib import Path

import torch

from scm.validation import InvalidParameterError

from .encoder import ResNetEncoder


def find_cached_weights(arch: str) -> Path | None:
    """The newest ``<arch>-*.pth`` in the torchvision cache, or None."""
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    candidates = sorted(folder.glob(f"{arch}-*.pth"), key=lambda p: p.stat().st_mtime)
    return candidates[-1] if candidates else None


def resolve_weights(arch: str, weights: str) -> Path | None:
    """The file to load for ``weights`` (None for random initialisation), or raise."""
    if weights == "random":
        return None
    if weights == "auto":
        path = find_cached_weights(arch)
        if path is None:
            folder = Path(torch.hub.get_dir()) / "checkpoints"
            raise FileNotFoundError(
                f"model.weights: no ImageNet weights for {arch} in {folder} ({arch}-*.pth); "
                "give a file with model.weights=<path> or set model.weights=random"
            )
        return path
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"model.weights: no such file {path}")
    return path


def load_pretrained(encoder: ResNetEncoder, weights: str) -> Path | None:
    """Load ImageNet weights into ``encoder`` (the classifier ``fc`` is dropped); return the file."""
    path = resolve_weights(encoder.arch, weights)
    if path is None:
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        reason = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
        if path.stat().st_size == 0:
            reason = "the file is empty"
        detail = f"{type(error).__name__}: {reason}" if reason else type(error).__name__
        raise InvalidParameterError(
            f"model.weights: cannot read {path} as a PyTorch state dict ({detail})"
        ) from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise InvalidParameterError(
            f"model.weights: {path} holds a {type(state).__name__}, expected a state dict"
        )
    mapping = encoder.torchvision_state_keys()
    renamed = {mapping[k]: v for k, v in state.items() if k in mapping}
    missing = sorted(set(encoder.state_dict()) - set(renamed))
    if missing:
        raise InvalidParameterError(
            f"model.weights: {path} is not a torchvision {encoder.arch} state dict "
            f"(missing {missing[:3]}{'...' if len(missing) > 3 else ''})"
        )
    shapes = [k for k, v in renamed.items() if v.shape != encoder.state_dict()[k].shape]
    if shapes:
        raise InvalidParameterError(
            f"model.weights: {path} has wrong shapes for {shapes[:3]} (another architecture?)"
        )
    encoder.load_state_dict(renamed, strict=True)
    return path
