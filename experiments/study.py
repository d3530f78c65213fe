"""One shape for a study, as :class:`proofs.statement.Statement` is one shape for a statement.

A :class:`Study` names the claim it tests in plain words (phrased as the paper or the method
states it, so that its verdict reads in the claim's sense), the docs/THEORY.md ids it checks, the
verdict its registered predictions imply (``expected``), its settings per mode, and five functions,
each doing one thing:

- ``predictions(config) -> [Prediction]``: the registered outcomes, each with the rule that
  scores it. They are written into the result before anything is measured;
- ``measure(context) -> dict``: the runs and their raw numbers (JSON values), nothing else;
- ``summarise(config, measurements) -> dict``: means, paired differences, selections;
- ``conclude(config, summary, outcomes) -> Finding``: the verdict on the claim (computed by a
  stated rule from the summary and the scored predictions), one headline number with its interval,
  at most two sentences, one table;
- ``plot(result, directory) -> [Path]``: figures from the result dict alone, so that
  ``coremtl figures`` redraws them from the results file.

:meth:`Study.run` is the only place these are put together, in that order: predictions are
registered (with their time) before ``measure`` is called, and scored on the summary after it.

Verdicts use one vocabulary for certificates and studies (:data:`LEGEND`): *holds*, *holds only
as stated here*, *fails*, *measured* and *error*.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from experiments.stats import CONFIDENCE, Estimate
from proofs.headline import Headline
from scm.validation import InvalidParameterError

HOLDS = "holds"
QUALIFIED = "holds only as stated here"
FAILS = "fails"
MEASURED = "measured"
ERROR = "error"
LEGEND = {
    HOLDS: "the claim or statement holds as tested",
    QUALIFIED: "it holds only with the qualifier that the statement or study gives (a regime, an "
    "assumption); the paper's unqualified wording fails, and the counterexample is given",
    FAILS: "the claim as tested does not hold; the headline gives the number",
    MEASURED: "a quantity measured; no claim at stake",
    ERROR: "the runner raised an error (see the results file)",
}
"""The one verdict vocabulary, with the meaning the report's legend prints (only the values in
use are printed)."""
SEVERITY = (ERROR, FAILS, QUALIFIED, HOLDS, MEASURED)
"""Verdicts from the most to the least serious: a claim takes the most serious verdict of its
evidence (measurements only when nothing else is at stake)."""


def headline_of(
    metric: str, estimate: Estimate, threshold: str = "", confidence: float = CONFIDENCE
) -> Headline:
    """The headline of a mean over seeds with its Student-t interval."""
    low, high = estimate.interval(confidence)
    return Headline(metric, estimate.mean, low, high, threshold, confidence)


def check_verdict(verdict: str) -> str:
    if verdict not in LEGEND:
        raise InvalidParameterError(f"verdict: expected one of {tuple(LEGEND)}, got {verdict!r}")
    return verdict


@dataclass(frozen=True)
class Outcome:
    """A prediction scored against the summary: ``held`` (``None`` when the data it needs were not
    measured in this setting), the number the rule read as a short ``text`` and ``detail`` (JSON)."""

    held: bool | None
    text: str
    detail: Mapping[str, Any] = field(default_factory=dict)
    id: str = ""
    """The prediction's id, filled in by :meth:`Study.run`."""


@dataclass(frozen=True)
class Prediction:
    """A registered outcome: ``id`` (``P1``, ...), what is predicted (``statement``), where it
    comes from (``rationale``: a statement of docs/THEORY.md, an earlier measurement) and the
    function that scores it on the study's summary."""

    id: str
    statement: str
    rationale: str
    score: Callable[[Mapping[str, Any]], Outcome]

    def registration(self) -> dict[str, str]:
        return {"id": self.id, "statement": self.statement, "rationale": self.rationale}


@dataclass(frozen=True)
class Table:
    """A small table of preformatted cells."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def __post_init__(self) -> None:
        for row in self.rows:
            if len(row) != len(self.columns):
                raise InvalidParameterError(
                    f"rows: expected {len(self.columns)} cells per row, got {len(row)}"
                )

    def to_dict(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "rows": [list(row) for row in self.rows]}

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Table:
        return cls(
            tuple(str(c) for c in record.get("columns", ())),
            tuple(tuple(str(c) for c in row) for row in record.get("rows", ())),
        )


@dataclass(frozen=True)
class Finding:
    """What a study concludes: the ``verdict`` (of :data:`LEGEND`), the ``headline`` number,
    ``result`` (at most two sentences), one small ``table``, folded ``details`` (Markdown lines) and
    a caption per figure stem."""

    verdict: str
    headline: Headline
    result: str
    table: Table = field(default_factory=lambda: Table((), ()))
    details: tuple[str, ...] = ()
    captions: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_verdict(self.verdict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "headline": self.headline.to_dict(),
            "result": self.result,
            "table": self.table.to_dict(),
            "details": list(self.details),
            "captions": dict(self.captions),
        }

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Finding:
        return cls(
            str(record["verdict"]),
            Headline.from_dict(record["headline"]),
            str(record.get("result", "")),
            Table.from_dict(record.get("table", {})),
            tuple(str(line) for line in record.get("details", ())),
            {str(k): str(v) for k, v in record.get("captions", {}).items()},
        )


def serial_map(jobs: Sequence[tuple[Callable, tuple]]) -> list:
    """Run ``(function, arguments)`` jobs one after the other (``coremtl verify --jobs N`` passes a
    mapper over worker processes instead; the results are the same)."""
    return [function(*arguments) for function, arguments in jobs]


@dataclass(frozen=True)
class Context:
    """What ``measure`` (and ``register``) receive: the setting, the first seed, the torch device,
    whether to show progress, the mapper of job lists and the registration made before."""

    config: Any
    seed: int
    device: str = "cpu"
    progress: bool = False
    mapper: Callable[[Sequence[tuple[Callable, tuple]]], list] = serial_map
    registration: Mapping[str, Any] = field(default_factory=dict)


def timestamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


@dataclass(frozen=True)
class Study:
    """One study of ``coremtl verify`` (module docstring). ``claim`` is what the study tests, in
    plain words; ``expected`` the verdict its registered predictions imply; ``register``, when
    given, computes more of the pre-registration (e.g. predicted outcomes per cell) before any
    measurement; ``spreads_jobs`` marks a study whose ``measure`` hands lists of jobs to
    ``context.mapper`` (it then runs in the main process under ``--jobs``)."""

    number: int
    name: str
    statements: tuple[str, ...]
    claim: str
    expected: str
    configs: Mapping[str, Any]
    predictions: Callable[[Any], list[Prediction]]
    measure: Callable[[Context], dict]
    summarise: Callable[[Any, dict], dict]
    conclude: Callable[[Any, dict, list[Outcome]], Finding]
    plot: Callable[[dict, Path], list[Path]]
    register: Callable[[Context], dict] | None = None
    spreads_jobs: bool = False

    def __post_init__(self) -> None:
        check_verdict(self.expected)

    def identity(self) -> dict[str, Any]:
        """What the report reads of the study beside its result: name, statements, claim and
        expected verdict."""
        return {
            "name": self.name,
            "statements": list(self.statements),
            "claim": self.claim,
            "expected": self.expected,
        }

    def run(
        self,
        config: Any,
        seed: int = 0,
        device: str = "cpu",
        progress: bool = False,
        mapper: Callable = serial_map,
    ) -> dict:
        """Register the predictions, measure, summarise, score, conclude (module docstring); the
        result holds JSON values only."""
        from experiments.synthetic.common import jsonable

        predictions = self.predictions(config)
        identifiers = [p.id for p in predictions]
        if len(set(identifiers)) != len(identifiers):
            raise InvalidParameterError(f"predictions: ids must be unique, got {identifiers}")
        registration: dict[str, Any] = {
            "predictions": [p.registration() for p in predictions],
            "registered_at": timestamp(),
        }
        context = Context(config, seed, device, progress, mapper, registration)
        if self.register is not None:
            registration["data"] = jsonable(self.register(context))
        registration["measurement_started_at"] = timestamp()
        measurements = jsonable(self.measure(context))
        return self.conclude_measurements(config, measurements, registration)

    def conclude_measurements(
        self, config: Any, measurements: Mapping[str, Any], registration: Any
    ) -> dict:
        """Summarise, score and conclude ``measurements`` already made (no training): the second
        half of :meth:`run`, also used to read runs made apart (e.g. one benchmark at a time)
        as one; ``registration`` is kept as given."""
        from experiments.synthetic.common import jsonable

        predictions = self.predictions(config)
        summary = jsonable(self.summarise(config, measurements))
        outcomes = [replace(p.score(summary), id=p.id) for p in predictions]
        finding = self.conclude(config, summary, outcomes)
        return jsonable(
            {
                "config": config,
                "registration": registration,
                "measurements": measurements,
                "summary": summary,
                "outcomes": [
                    {**p.registration(), "held": o.held, "measured": o.text, "detail": o.detail}
                    for p, o in zip(predictions, outcomes, strict=True)
                ],
                "finding": finding.to_dict(),
                "verdict": finding.verdict,
            }
        )


def held_text(outcomes: Sequence[Outcome]) -> str:
    """``"held P1, P3; not held P2; not measured P4"``."""
    groups: dict[str, list[str]] = {"held": [], "not held": [], "not measured": []}
    for outcome in outcomes:
        key = "not measured" if outcome.held is None else "held" if outcome.held else "not held"
        groups[key].append(outcome.id)
    return "; ".join(f"{key} {', '.join(ids)}" for key, ids in groups.items() if ids)
