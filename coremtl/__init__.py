"""CORE-MTL: the method library (dual streams, CKA, counterfactual swaps, grounding, probes,
baselines and one trainer).

The entry point for your own backbone and tasks is :mod:`coremtl.preset`, re-exported here:
``coremtl.Task``, ``coremtl.build``, ``coremtl.train`` and ``coremtl.MTCRLOptions``; the method
names ``coremtl.METHODS`` and ``coremtl.canonical_method`` (:mod:`coremtl.names`). Each is
imported on first use, so ``import coremtl`` stays cheap.
"""

from __future__ import annotations

from typing import Any

_PUBLIC = {
    "Task": "coremtl.tasks",
    "build": "coremtl.preset",
    "train": "coremtl.preset",
    "evaluate": "coremtl.tasks",
    "METHODS": "coremtl.names",
    "canonical_method": "coremtl.names",
    "MTCRLOptions": "coremtl.architectures.mtcrl",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'coremtl' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_PUBLIC[name]), name)
