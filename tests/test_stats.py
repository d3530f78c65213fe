"""experiments.stats: the one place where the standard error and the paired tests are computed."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from experiments.stats import (
    Estimate,
    bonferroni_z,
    detectable_difference,
    estimate,
    paired_difference,
    seeds_needed,
    standard_error,
)
from scm.validation import InvalidParameterError

SAMPLES = [
    [0.1, 0.4, 0.2, 0.35, 0.3],
    [1.0, -1.0, 0.5, 0.25],
    [3.0, 3.0, 3.0],
]


@pytest.mark.parametrize("values", SAMPLES)
def test_estimate_is_the_mean_with_the_sample_standard_error(values):
    found = estimate(values)
    array = np.asarray(values)
    assert found.mean == pytest.approx(array.mean())
    assert found.sd == pytest.approx(array.std(ddof=1))
    assert found.se == pytest.approx(array.std(ddof=1) / math.sqrt(array.size))
    assert standard_error(values) == pytest.approx(found.se)


@pytest.mark.parametrize("values", SAMPLES)
def test_paired_difference_cancels_what_both_seeds_share(values):
    shared = np.linspace(-5, 5, len(values))
    a, b = shared + np.asarray(values), shared
    found, direct = paired_difference(a, b), estimate(values)
    assert found.n == direct.n
    assert (found.mean, found.se) == pytest.approx((direct.mean, direct.se), abs=1e-12)


def test_one_seed_has_an_infinite_interval_and_never_passes_the_k_se_test():
    single = estimate([0.7])
    assert single.interval() == (-math.inf, math.inf)
    assert not single.above() and not single.below()


def test_student_interval_is_wider_than_the_normal_one_for_few_seeds():
    found = estimate([0.1, 0.3, 0.2])
    low, high = found.interval(0.95)
    assert (high - low) / 2 > 1.96 * found.se
    assert low < found.mean < high


def test_k_se_test_reads_the_sign_and_the_size():
    assert Estimate(0.5, 0.2, 5, 0.45).above()
    assert not Estimate(0.3, 0.2, 5, 0.45).above()
    assert Estimate(-0.5, 0.2, 5, 0.45).below() and Estimate(-0.5, 0.2, 5, 0.45).separated()


def test_detectable_difference_is_found_with_the_stated_power_by_simulation():
    rng = np.random.default_rng(0)
    sd, n = 0.3, 8
    difference = detectable_difference(sd, n, k=2.0, power=0.8)
    hits = [estimate(rng.normal(difference, sd, n)).mean > 2.0 * sd / math.sqrt(n)
            for _ in range(4000)]  # fmt: skip
    assert np.mean(hits) == pytest.approx(0.8, abs=0.03)


def test_seeds_needed_inverts_the_detectable_difference():
    sd = 0.4
    for n in (4, 10, 47):
        assert seeds_needed(detectable_difference(sd, n) * (1 + 1e-9), sd) == n
    assert seeds_needed(0.0, sd) is None


def test_bonferroni_z_grows_with_the_number_of_tests():
    assert bonferroni_z(1) == pytest.approx(1.959964, rel=1e-5)
    assert bonferroni_z(100) > bonferroni_z(10) > bonferroni_z(1)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: estimate([]), "values: expected a non-empty"),
        (lambda: paired_difference([1, 2], [1]), "a, b: paired values"),
        (lambda: bonferroni_z(0), "tests, level"),
    ],
)
def test_bad_input_is_refused_in_one_line(call, message):
    with pytest.raises(InvalidParameterError, match=message):
        call()


def test_estimate_round_trips_through_a_dict():
    found = estimate([0.1, 0.2, 0.4])
    assert Estimate.from_dict(found.to_dict()) == found


def test_an_estimate_of_one_seed_survives_the_results_file():
    from experiments.synthetic.common import jsonable

    single = estimate([0.3])
    stored = json.loads(json.dumps(jsonable(single.to_dict())))
    assert stored["se"] is None
    assert Estimate.from_dict(stored) == single
