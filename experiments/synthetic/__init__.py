"""The synthetic studies of ``coremtl verify``, one module per study (see ``common``)."""

from __future__ import annotations

import importlib
from types import ModuleType

STUDIES: dict[int, str] = {
    1: "experiments.synthetic.study1_regime_map",
    2: "experiments.synthetic.study2_bound",
    3: "experiments.synthetic.study3_alignment",
    4: "experiments.synthetic.study4_balancers",
    5: "experiments.synthetic.study5_cka",
    6: "experiments.synthetic.study6_substitution",
    7: "experiments.synthetic.study7_swap",
    8: "experiments.synthetic.study8_cost",
    9: "experiments.synthetic.study9_shortcut",
    10: "experiments.synthetic.study10_mtcrl",
    11: "experiments.synthetic.study11_closed_form",
}


def study_module(number: int) -> ModuleType:
    """The module of study ``number``."""
    return importlib.import_module(STUDIES[number])
