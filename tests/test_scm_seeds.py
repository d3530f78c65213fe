"""``scm.seeds.derive_seed``: the one seed-derivation function."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scm.seeds import derive_seed
from scm.validation import InvalidParameterError

labels = st.lists(st.one_of(st.integers(-(2**70), 2**70), st.text(max_size=8)), max_size=4)


def test_it_is_the_first_word_of_numpys_seed_sequence():
    expected = np.random.SeedSequence(6, spawn_key=[0, 4, 0, 0]).generate_state(1, np.uint64)[0]
    assert derive_seed(3, 2, 0) == int(expected) >> 1


@given(st.integers(-(2**70), 2**70), labels)
def test_seeds_lie_in_the_range_numpy_and_torch_accept(seed, names):
    value = derive_seed(seed, *names)
    assert 0 <= value < 2**63
    np.random.default_rng(value)
    short = derive_seed(seed, *names, bits=32)
    assert short == value >> 31
    np.random.RandomState(short)


@pytest.mark.parametrize("bits", [0, 64, 2.0])
def test_bits_outside_one_to_sixty_three_is_one_line_error(bits):
    with pytest.raises(InvalidParameterError, match=r"bits: expected an integer in \[1, 63\]"):
        derive_seed(0, bits=bits)


@given(st.integers(0, 2**40), labels, labels)
def test_different_labels_give_different_seeds(seed, first, second):
    if first != second:
        assert derive_seed(seed, *first) != derive_seed(seed, *second)


def test_neighbouring_inputs_and_kinds_of_label_differ():
    values = {
        derive_seed(0),
        derive_seed(1),
        derive_seed(-1),
        derive_seed(0, 0),
        derive_seed(0, 1),
        derive_seed(0, "1"),
        derive_seed(0, 1, 0),
        derive_seed(0, 0, 1),
    }
    assert len(values) == 8


def test_string_labels_do_not_depend_on_pythons_hash_salt():
    root = Path(__file__).resolve().parents[1]
    script = "from scm.seeds import derive_seed; print(derive_seed(7, 'train', 'depth', 3))"
    outputs = set()
    for salt in ("0", "1", "12345"):
        environment = {**os.environ, "PYTHONPATH": str(root), "PYTHONHASHSEED": salt}
        completed = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=environment
        )
        assert completed.returncode == 0, completed.stderr
        outputs.add(completed.stdout.strip())
    assert outputs == {str(derive_seed(7, "train", "depth", 3))}


@pytest.mark.parametrize("bad", [1.5, None, True, b"x"])
def test_a_label_that_is_not_an_integer_or_a_string_is_one_line_error(bad):
    with pytest.raises(InvalidParameterError, match=r"label 1: expected an integer or a string"):
        derive_seed(0, 2, bad)


def test_a_seed_that_is_not_an_integer_is_one_line_error():
    with pytest.raises(InvalidParameterError, match=r"seed: expected an integer, got float"):
        derive_seed(1.0)
