"""The methods of the shortcut suite: every method of ``coremtl.METHODS``, the ablations that
trace an effect to its ingredient, and the controls that separate capacity from ingredient.

Each entry is what a researcher would pass to :func:`coremtl.train` (the method name and its
options), so the suite measures the library as a user gets it. Families:

- ``balancer``: hard parameter sharing with a gradient balancer (EW is the reference);
- ``architecture``: MTAN, Rep-MTL, MT-CRL (without environment labels, hence without its
  invariance term: "mt-crl (no invariance)"), single-task;
- ``core-mtl``: CORE-MTL at the library defaults, with the authors' configuration
  (:func:`coremtl.authors`), with hard grounding (rendered scenes only: it needs images whose
  appearance is albedo times shading), and with the label-conditional independence penalty
  (docs/THEORY.md S13) or none;
- ``ablation``: one ingredient of a method switched off (MT-CRL without decorrelation, without
  sparsity, without routing, with one module, with soft gates; CORE-MTL with heads on both streams
  or without its independence term; and, run on demand where the configuration wins, CORE-MTL at
  the library's or the authors' weights without one of its terms, ``without=(term,)``);
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
    """One configuration of :func:`coremtl.train`: ``method`` (a name of ``coremtl.METHODS``),
    its ``options``, its ``family``, the method it ablates or controls (``of``) and the ingredient
    it removes or keeps. Its :attr:`name` is the library's label of that configuration
    (:func:`coremtl.labels.method_label`), so the report names it as a user would build it."""

    method: str
    family: str
    options: Mapping[str, Any] = field(default_factory=dict)
    of: str | None = None
    ingredient: str | None = None
    data: tuple[str, ...] | None = None
    """The data sets it applies to (``None``: all)."""
    on_demand: bool = False
    """Run only on a benchmark where the method it belongs to (``of``) wins, to trace that win
    (:func:`experiments.synthetic.shortcuts.study.measure`'s second phase)."""

    @property
    def name(self) -> str:
        from coremtl.labels import method_label

        if self.family == "calibration":
            return f"{self.method} (trained on the target law)"
        return method_label(self.method, **self.build_options(label=True))

    def applies_to(self, benchmark_key: str) -> bool:
        return self.data is None or benchmark_key.split("/")[0] in self.data

    def build_options(self, label: bool = False) -> dict[str, Any]:
        """The keyword arguments of :func:`coremtl.train` (objects made fresh for each run);
        with ``label``, those that :func:`coremtl.labels.method_label` reads."""
        from coremtl.architectures.mtcrl import MTCRLOptions
        from coremtl.objective import CoreMTLObjective

        options = dict(self.options)
        if "without" in options:
            options["without"] = tuple(options["without"])
        if "mtcrl" in options:
            options["mtcrl"] = MTCRLOptions(**options["mtcrl"])
        if "objective" in options:
            if label:
                options.update(options.pop("objective"))
            else:
                options["objective"] = CoreMTLObjective(**options["objective"])
        return options


BALANCERS = ("ew", "pcgrad", "mgda", "upgrad", "cagrad", "nashmtl", "famo")
EW = "ew"
CORE = "core-mtl"
AUTHORS = "core-mtl (authors' weights: cityscapes)"
AUTHORS_RELATIVE = "core-mtl (authors' weights: cityscapes, relative to the tasks)"
TERM_NAMES = {"cka": "the CKA term", "cfa": "the CFA term", "reconstruction": "reconstruction"}
MTCRL = "mt-crl (no invariance)"


def _table() -> list[Method]:
    methods = [Method(name, "balancer") for name in BALANCERS]
    methods += [
        Method("mtan", "architecture"),
        Method("rep-mtl", "architecture"),
        Method("mt-crl", "architecture"),
        Method("single-task", "architecture"),
        Method("core-mtl", "core-mtl"),
        Method("core-mtl", "core-mtl", {"weights": "authors"}),
        Method("core-mtl", "core-mtl", {"weights": "authors-relative"}),
        Method("core-mtl", "core-mtl", {"grounding": "hard"}, data=("scenes",)),
        Method(
            "core-mtl", "core-mtl", {"objective": {"independence": "conditional"}},
            of=CORE, ingredient="label-conditional independence",
        ),
        Method(
            "core-mtl", "ablation", {"objective": {"independence": "none"}},
            of=CORE, ingredient="independence term",
        ),
        Method(
            "core-mtl", "ablation", {"heads_on": "both"}, of=CORE, ingredient="heads on Z_s only",
        ),
        Method(
            "mt-crl", "ablation", {"mtcrl": {"decorrelation": 0.0}},
            of=MTCRL, ingredient="decorrelation",
        ),
        Method("mt-crl", "ablation", {"mtcrl": {"sparsity": 0.0}}, of=MTCRL, ingredient="sparsity"),
        Method(
            "mt-crl", "ablation", {"mtcrl": {"routing": "none"}}, of=MTCRL, ingredient="routing",
        ),
        Method("mt-crl", "ablation", {"mtcrl": {"modules": 1}}, of=MTCRL, ingredient="modules"),
        Method(
            "mt-crl", "ablation", {"mtcrl": {"gates": "soft"}}, of=MTCRL,
            ingredient="sampled binary gates",
        ),
        *[
            Method(
                "core-mtl", "ablation", {**base, "without": (term,)}, of=of,
                ingredient=name, on_demand=True,
            )
            for base, of, terms in (
                ({}, CORE, ("cfa", "reconstruction")),
                ({"weights": "authors"}, AUTHORS, ("cka", "cfa", "reconstruction")),
            )
            for term in terms
            for name in [TERM_NAMES[term]]
        ],
        Method("ew", "control", {"capacity_of": "mt-crl"}, of=MTCRL, ingredient="capacity"),
        Method("ew", "control", {"capacity_of": "core-mtl"}, of=CORE, ingredient="capacity"),
        Method("ew", "control", {"capacity_of": "mtan"}, of="mtan", ingredient="capacity"),
        Method("ew", "calibration"),
    ]  # fmt: skip
    return methods


METHODS: dict[str, Method] = {method.name: method for method in _table()}
CALIBRATION = "ew (trained on the target law)"
HARD = "core-mtl (hard grounding)"
CONDITIONAL = "core-mtl (label-conditional CKA)"
MTCRL_CAPACITY = "ew (capacity of mt-crl)"
MTCRL_WITHOUT_DECORRELATION = "mt-crl (no invariance, no decorrelation)"
CORE_VARIANTS = tuple(name for name, m in METHODS.items() if m.family == "core-mtl")
"""The CORE-MTL settings among which training-domain validation selects."""
