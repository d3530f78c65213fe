"""Hypothesis strategies for random SCMs of setting S, shared by the test modules."""

from __future__ import annotations

import math

from hypothesis import strategies as st

from scm import random_scm

angles = st.floats(min_value=0.0, max_value=math.pi / 2, allow_nan=False)


@st.composite
def scms(draw, max_k: int = 6, max_tasks: int = 5, allow_rho: bool = False):
    """A random SCM: k in 1..max_k, K in 1..max_tasks, random PSD covariances, shifts, mixing."""
    k = draw(st.integers(1, max_k))
    direction = draw(
        st.sampled_from(["random", "worst", "shrink"] + (["orthogonal"] if k > 1 else []))
    )
    shift = draw(st.floats(0.0, 0.9 if direction == "shrink" else 3.0))
    if direction == "shrink":
        shift *= 0.1 * math.sqrt(k)
    return random_scm(
        k=k,
        num_tasks=draw(st.integers(1, max_tasks)),
        seed=draw(st.integers(0, 2**31 - 1)),
        shift_size=shift,
        shift_direction=direction,
        mean_shift=draw(st.floats(0.0, 2.0)),
        mixing=draw(st.sampled_from(["identity", "haar"])),
        rho=draw(st.floats(-0.8, 0.8)) if allow_rho else 0.0,
        noise_std=draw(st.floats(0.0, 1.0)),
    )
