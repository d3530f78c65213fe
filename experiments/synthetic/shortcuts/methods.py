"""The methods of the shortcut suite: every method of ``coremtl.METHODS``, the ablations that
trace an effect to its ingredient, and the controls that separate capacity from ingredient.

Each entry is what a researcher would pass to :func:`coremtl.train` (the method name and its
options), so the suite measures the library as a user gets it. Families:

- ``balancer``: hard parameter sharing with a gradient balancer (EW is the reference);
- ``architecture``: MTAN, Rep-MTL, MT-CRL (without environment labels, hence without its
  invariance term: "MT-CRL (no invariance)"), single-task;
- ``core-mtl``: CORE-MTL at the library defaults, with the authors' configuration
  (:func:`coremtl.authors`), with hard grounding (rendered scenes only: it needs images whose
  appearance is albedo times shading), and with the label-conditional independence penalty
  (docs/THEORY.md S13) or none;
- ``ablation``: one ingredient of a method switched off (MT-CRL without decorrelation, without
  sparsity, without routing, with one module, with soft gates; CORE-MTL with heads on both streams);
- ``control``: EW on the same extra layers as a method (matched prediction-path parameters,
  :mod:`coremtl.capacity`);
- ``calibration``: EW trained on the target law, what is learnable without the shortcut
  (a target-oracle row, labelled as such).

``of`` names the method an ablation or control belongs to, ``ingredient`` what it removes or
keeps; the summary reads them to name the ingredient behind a winner.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

FAMILIES = ("balancer", "architecture", "core-mtl", "ablation", "control", "calibration")


@dataclass(frozen=True)
class Method:
    name: str
    method: str
    family: str
    options: Mapping[str, Any] = field(default_factory=dict)
    of: str | None = None
    ingredient: str | None = None
    data: tuple[str, ...] | None = None
    """The data sets it applies to (``None``: all)."""

    def applies_to(self, benchmark_key: str) -> bool:
        return self.data is None or benchmark_key.split("/")[0] in self.data

    def build_options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`coremtl.train` (objects made fresh for each run)."""
        from coremtl.architectures.mtcrl import MTCRLOptions
        from coremtl.objective import CoreMTLObjective

        options = dict(self.options)
        if "mtcrl" in options:
            options["mtcrl"] = MTCRLOptions(**options["mtcrl"])
        if "objective" in options:
            options["objective"] = CoreMTLObjective(**options["objective"])
        return options


BALANCERS = ("EW", "PCGrad", "MGDA", "UPGrad", "CAGrad", "Nash-MTL", "FAMO")
_BALANCER_NAMES = {
    "EW": "ew",
    "PCGrad": "pcgrad",
    "MGDA": "mgda",
    "UPGrad": "upgrad",
    "CAGrad": "cagrad",
    "Nash-MTL": "nashmtl",
    "FAMO": "famo",
}
CORE = "CORE-MTL"
MTCRL = "MT-CRL (no invariance)"


def _table() -> dict[str, Method]:
    methods = [Method(name, method, "balancer") for name, method in _BALANCER_NAMES.items()]
    methods += [
        Method("MTAN", "mtan", "architecture"),
        Method("Rep-MTL", "rep-mtl", "architecture"),
        Method(MTCRL, "mt-crl", "architecture"),
        Method("single-task", "single-task", "architecture"),
        Method(CORE, "core-mtl", "core-mtl"),
        Method("CORE-MTL (authors)", "core-mtl", "core-mtl", {"weights": "authors"}),
        Method(
            "CORE-MTL (hard grounding)", "core-mtl", "core-mtl", {"grounding": "hard"},
            data=("scenes",),
        ),
        Method(
            "CORE-MTL (conditional CKA)", "core-mtl", "core-mtl",
            {"objective": {"independence": "conditional"}},
            of=CORE, ingredient="label-conditional independence",
        ),
        Method(
            "CORE-MTL (no CKA)", "core-mtl", "ablation",
            {"objective": {"independence": "none"}}, of=CORE, ingredient="independence term",
        ),
        Method(
            "CORE-MTL (heads on Z_s and Z_r)", "core-mtl", "ablation", {"heads_on": "both"},
            of=CORE, ingredient="heads on Z_s only",
        ),
        Method(
            "MT-CRL (no decorrelation)", "mt-crl", "ablation", {"mtcrl": {"decorrelation": 0.0}},
            of=MTCRL, ingredient="decorrelation",
        ),
        Method(
            "MT-CRL (no sparsity)", "mt-crl", "ablation", {"mtcrl": {"sparsity": 0.0}},
            of=MTCRL, ingredient="sparsity",
        ),
        Method(
            "MT-CRL (no routing)", "mt-crl", "ablation", {"mtcrl": {"routing": "none"}},
            of=MTCRL, ingredient="routing",
        ),
        Method(
            "MT-CRL (one module)", "mt-crl", "ablation", {"mtcrl": {"modules": 1}},
            of=MTCRL, ingredient="modules",
        ),
        Method(
            "MT-CRL (soft gates)", "mt-crl", "ablation", {"mtcrl": {"gates": "soft"}},
            of=MTCRL, ingredient="binary gates",
        ),
        Method(
            "EW (layers of MT-CRL)", "ew", "control", {"capacity_of": "mt-crl"},
            of=MTCRL, ingredient="capacity",
        ),
        Method(
            "EW (layers of CORE-MTL)", "ew", "control", {"capacity_of": "core-mtl"},
            of=CORE, ingredient="capacity",
        ),
        Method(
            "EW (layers of MTAN)", "ew", "control", {"capacity_of": "mtan"},
            of="MTAN", ingredient="capacity",
        ),
        Method("EW on the target law", "ew", "calibration"),
    ]  # fmt: skip
    return {method.name: method for method in methods}


METHODS: dict[str, Method] = _table()
CALIBRATION = "EW on the target law"
CORE_VARIANTS = tuple(name for name, m in METHODS.items() if m.family == "core-mtl")
"""The CORE-MTL settings among which training-domain validation selects."""
