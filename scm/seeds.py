"""One way to derive a seed from a run's seed and the labels of a random stream.

``derive_seed(seed, *labels)`` is the first 64-bit word of numpy's
``SeedSequence(entropy=seed, spawn_key=labels)``, cut to its leading 63 bits (or fewer) so that
numpy and torch accept it. SeedSequence mixes its entropy and spawn key with a hash designed so that nearby
inputs (``epoch`` and ``epoch + 1``, ``seed`` and ``seed + 1``) give unrelated streams (numpy's
implementation follows M. E. O'Neill's ``seed_seq`` alternative of the randutils library, 2015).
Labels are integers of any sign or strings; a string enters through its BLAKE2b digest, never
through Python's ``hash``, which is salted per process for strings. Each label is tagged with its kind, so ``3`` and ``"3"`` differ.
"""

from __future__ import annotations

import hashlib
from numbers import Integral

import numpy as np

from scm.validation import InvalidParameterError

_INTEGER, _STRING = 0, 1


def _non_negative(value: int) -> int:
    """The zigzag map ``0, -1, 1, -2, ... -> 0, 1, 2, 3, ...`` (SeedSequence takes no signs)."""
    return 2 * value if value >= 0 else -2 * value - 1


def _key(label: int | str, position: int) -> tuple[int, int]:
    if isinstance(label, str):
        digest = hashlib.blake2b(label.encode("utf-8"), digest_size=8).digest()
        return _STRING, int.from_bytes(digest, "little")
    if isinstance(label, Integral) and not isinstance(label, bool):
        return _INTEGER, _non_negative(int(label))
    raise InvalidParameterError(
        f"label {position}: expected an integer or a string, got {type(label).__name__} {label!r}"
    )


def derive_seed(seed: int, *labels: int | str, bits: int = 63) -> int:
    """A seed in ``[0, 2**bits)`` for the random stream named by ``labels`` under run seed ``seed``.

    Deterministic across processes, platforms and Python versions; different label tuples give
    independent-looking seeds. ``bits = 63`` suits numpy and torch; ``bits = 32`` suits the
    legacy ``np.random.seed``.
    """
    if isinstance(seed, bool) or not isinstance(seed, Integral):
        raise InvalidParameterError(f"seed: expected an integer, got {type(seed).__name__}")
    if isinstance(bits, bool) or not isinstance(bits, Integral) or not 1 <= bits <= 63:
        raise InvalidParameterError(f"bits: expected an integer in [1, 63], got {bits!r}")
    spawn_key = [word for i, label in enumerate(labels) for word in _key(label, i)]
    sequence = np.random.SeedSequence(_non_negative(int(seed)), spawn_key=spawn_key)
    return int(sequence.generate_state(1, np.uint64)[0]) >> (64 - int(bits))
