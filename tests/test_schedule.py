"""CORE-MTL's staged schedule (:mod:`coremtl.schedule`): the default objective's CKA warm-up."""

from __future__ import annotations

from coremtl import defaults
from coremtl.schedule import capped_cka_warmup


def test_the_default_cka_warmup_is_a_quarter_of_a_short_independence_stage():
    assert capped_cka_warmup(6, 2, 10) == (6 - 2) * 10 // 4
    assert capped_cka_warmup(2, 1, 1) == 1
    assert capped_cka_warmup(200, 40, 100) == defaults.CKA_WARMUP_STEPS
    assert capped_cka_warmup(200, 40, 100, warmup=20) == 20


def _independence(objective):
    from coremtl.schedule import core_mtl_sources

    sources, _ = core_mtl_sources(objective, None, epochs=6, stages=(0, 2), steps_per_epoch=10)
    return next(s.source for s in sources if s.name == "independence")


def test_every_objective_that_keeps_the_default_warmup_gets_it_capped_to_the_run():
    """The library's default warm-up is capped in the default objective and in any given one that
    keeps it (the label-conditional variant, no independence term), so variants compared on one
    run ramp their CKA alike; a warm-up chosen by the caller is used as given."""
    from coremtl.objective import CoreMTLObjective

    capped = (6 - 2) * 10 // 4
    assert _independence(None).cka_warmup_steps == capped
    conditional = CoreMTLObjective(independence="conditional")
    assert _independence(conditional).cka_warmup_steps == capped
    assert _independence(CoreMTLObjective(cka_warmup_steps=7)).cka_warmup_steps == 7
    assert _independence(CoreMTLObjective(cka_warmup_steps=0)).cka_warmup_steps == 0
