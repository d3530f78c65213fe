"""The synthetic studies of ``coremtl verify``: one module (or package) per study, each exposing
``STUDY``, an :class:`experiments.study.Study`."""

from __future__ import annotations

import importlib
from pathlib import Path

from experiments.study import (
    FAILS,
    HOLDS,
    MEASURED,
    QUALIFIED,
    Context,
    Finding,
    Study,
    serial_map,
)
from proofs.headline import Headline

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
    """The :class:`Study` of study ``number``."""
    module = importlib.import_module(STUDIES[number])
    if hasattr(module, "STUDY"):
        return module.STUDY
    return _unmigrated(number, module)


_OLD_VERDICTS = {
    "agrees": HOLDS,
    "agrees only as qualified": QUALIFIED,
    "contradicts": FAILS,
    "theory agrees; CORE-MTL advantage contradicted": FAILS,
    "measured": MEASURED,
}


def _unmigrated(number: int, module) -> Study:
    """A study module not yet in the :class:`Study` shape, wrapped so that verify can run it."""

    def measure(context: Context) -> dict:
        import inspect

        options = {}
        if "mapper" in inspect.signature(module.run).parameters:
            options["mapper"] = context.mapper
        return module.run(
            context.config, context.seed, context.device, progress=context.progress, **options
        )

    def conclude(config, summary: dict, outcomes) -> Finding:
        finding = str(summary.get("finding", ""))
        return Finding(
            _OLD_VERDICTS.get(summary.get("verdict"), MEASURED),
            Headline("see the result", float("nan")),
            finding[:300],
            details=(finding,),
        )

    def plot(result: dict, directory: Path) -> list[Path]:
        return module.plot(result["measurements"], directory)

    import inspect

    return Study(
        number=number,
        name=module.NAME,
        statements=tuple(module.STATEMENTS),
        claim="",
        expected=MEASURED,
        configs=module.CONFIGS,
        predictions=lambda config: [],
        measure=measure,
        summarise=lambda config, measurements: measurements,
        conclude=conclude,
        plot=plot,
        spreads_jobs="mapper" in inspect.signature(module.run).parameters,
    )


__all__ = ["STUDIES", "serial_map", "study"]
