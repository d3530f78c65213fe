"""Hypothesis profiles: the ordinary run's case counts, and a deep one for `make test-deep`.

Each property test states its ordinary number of cases with ``cases(n)``. Under the ``deep``
profile (``HYPOTHESIS_PROFILE=deep`` or ``pytest --hypothesis-profile=deep``) every one of them
runs ``DEEP_CASES`` cases instead.
"""

from __future__ import annotations

import os

from hypothesis import settings

DEEP_CASES = 2_000

settings.register_profile("deep", max_examples=DEEP_CASES, deadline=None, print_blob=True)


def load_profile_from_environment() -> None:
    """Load the profile named by ``HYPOTHESIS_PROFILE``; leave hypothesis' default otherwise."""
    name = os.environ.get("HYPOTHESIS_PROFILE")
    if name:
        settings.load_profile(name)


def deep() -> bool:
    """Whether the deep profile is the loaded one."""
    return settings.default.max_examples >= DEEP_CASES


def cases(ordinary: int) -> settings:
    """Settings running ``ordinary`` cases, or ``DEEP_CASES`` under the deep profile."""
    return settings(max_examples=DEEP_CASES if deep() else ordinary, deadline=None)
