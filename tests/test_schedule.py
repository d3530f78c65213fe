"""CORE-MTL's staged schedule (:mod:`coremtl.schedule`): the default objective's CKA warm-up."""

from __future__ import annotations

from coremtl import defaults
from coremtl.schedule import capped_cka_warmup


def test_the_default_cka_warmup_is_a_quarter_of_a_short_independence_stage():
    assert capped_cka_warmup(6, 2, 10) == (6 - 2) * 10 // 4
    assert capped_cka_warmup(2, 1, 1) == 1
    assert capped_cka_warmup(200, 40, 100) == defaults.CKA_WARMUP_STEPS
    assert capped_cka_warmup(200, 40, 100, warmup=20) == 20
