"""The synthetic studies of ``coremtl verify``: one module (or package) per study, each exposing
``STUDY``, an :class:`experiments.study.Study`."""

from __future__ import annotations

import importlib

from experiments.study import Study, serial_map

STUDIES: dict[int, str] = {
    1: "experiments.synthetic.regime_map",
    2: "experiments.synthetic.study2_bound",
    3: "experiments.synthetic.study3_alignment",
    4: "experiments.synthetic.study4_balancers",
    5: "experiments.synthetic.study5_cka",
    6: "experiments.synthetic.study6_substitution",
    7: "experiments.synthetic.study7_swap",
    8: "experiments.synthetic.study8_cost",
    9: "experiments.synthetic.shortcuts.study",
    10: "experiments.synthetic.study10_mtcrl",
    11: "experiments.synthetic.study11_closed_form",
}


def study(number: int) -> Study:
    """The :class:`Study` of study ``number`` (the ``STUDY`` of its module)."""
    return importlib.import_module(STUDIES[number]).STUDY


__all__ = ["STUDIES", "serial_map", "study"]
