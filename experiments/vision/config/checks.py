"""The one-line check every configuration section uses: a key, what it expects, what it got."""

from __future__ import annotations

from scm.validation import InvalidParameterError


def require(condition: bool, key: str, expected: str, value: object) -> None:
    """Raise ``key: expected <expected>, got <value>`` (an
    :class:`~scm.validation.InvalidParameterError`) unless ``condition``."""
    if not condition:
        raise InvalidParameterError(f"{key}: expected {expected}, got {value!r}")
