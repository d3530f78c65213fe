"""Study 7's summary, registered predictions and finding."""

from __future__ import annotations

from experiments.stats import bonferroni_z
from experiments.study import FAILS, HOLDS, Finding, Outcome, Prediction, Table, held_text
from experiments.synthetic.study7_swap.gradients import Config
from proofs.headline import Headline


def summarise(config: Config, measurements: dict) -> dict:
    rows = measurements["rows"]
    scored = [row for row in rows if row["standard_error"] > 0]
    centred = [row for row in rows if row["variant"] == "input" and row["mu"] == 0.0]
    return {
        "derived": measurements["derived"],
        "batches": len(rows),
        "exact": sum(row["agrees_exactly"] for row in rows),
        "largest_z": max(abs(row["z_expected"]) for row in scored),
        "tests": len(scored),
        "bonferroni_z": bonferroni_z(len(scored)),
        "input_at_zero_mean": max((abs(row["expected"]) for row in centred), default=0.0),
        "task_at_zero_mean": max(
            (abs(row["expected"]) for row in rows if row["variant"] == "task" and row["mu"] == 0),
            default=0.0,
        ),
    }


def predictions(config: Config) -> list[Prediction]:
    def autograd(summary: dict) -> Outcome:
        text = f"{summary['exact']}/{summary['batches']} batches equal to round-off"
        return Outcome(summary["exact"] == summary["batches"], text)

    def derived(variant: str, key: str):
        def score(summary: dict) -> Outcome:
            entry = summary["derived"][variant]
            return Outcome(bool(entry[key]), f"E[dL/dpsi] = {entry['expected_gradient']}")

        return score

    def no_pull(summary: dict) -> Outcome:
        z, limit = summary["largest_z"], summary["bonferroni_z"]
        held = summary["input_at_zero_mean"] == 0.0 and z <= limit
        return Outcome(
            held,
            f"max |E| at mu = 0: {summary['input_at_zero_mean']:.2g}; largest |z| of batch means "
            f"{z:.2f} (Bonferroni z {limit:.2f} over {summary['tests']} batches)",
        )

    return [
        Prediction(
            "P1",
            "autograd through CoreMTLObjective equals the derived per-sample gradient on every "
            "batch, to float64 round-off",
            "the derivation is exact for the scalar setting S",
            autograd,
        ),
        Prediction(
            "P2",
            "with the decoder tied to the encoder, the swap's expected gradient on psi equals "
            "the task loss's",
            "S9: R(psi) R(psi)^T = I, so the re-encoded swap reads the factual Zhat_s",
            derived("tied", "equals_task_gradient"),
        ),
        Prediction(
            "P3",
            "feature-level CFA gives psi no gradient",
            "the edited features are detached",
            derived("feature", "is_zero"),
        ),
        Prediction(
            "P4",
            "input-level CFA's expected gradient on psi is 0 at mu = 0, and every batch mean is "
            "within the Bonferroni z of its expectation",
            "S9: the swap adds -2 w^T E[r_i] E[Zhat_r(j)], zero at mu = 0 or the optimal bias",
            no_pull,
        ),
    ]


def conclude(config: Config, summary: dict, outcomes: list[Outcome]) -> Finding:
    """The claim holds if the input-level swap pulls psi where the derivation says it cannot
    (P4 not held); it fails, as registered, if the swap's expected gradient is 0 at mu = 0."""
    held = {outcome.id: outcome.held for outcome in outcomes}
    verdict = FAILS if held["P4"] else HOLDS
    headline = Headline(
        "input swap, largest |z| of batch means against the derivation (no pull at mu = 0)",
        summary["largest_z"],
        threshold=f"<= {summary['bonferroni_z']:.2f} Bonferroni: "
        + ("the claimed pull is absent" if held["P4"] else "not met, a pull the derivation lacks"),
    )
    result = (
        "The input-level swap's expected gradient on psi is "
        + (
            "zero at mu = 0, so the swap adds no pull of psi towards 0 beyond the task loss; "
            if held["P4"]
            else "not zero at mu = 0; "
        )
        + f"autograd equals the derivation on {summary['exact']} of {summary['batches']} batches."
    )
    table = Table(
        ("swap", "expected gradient on psi"),
        tuple(
            (variant, entry["expected_gradient"]) for variant, entry in summary["derived"].items()
        ),
    )
    return Finding(
        verdict,
        headline,
        result,
        table,
        details=(f"Predictions: {held_text(outcomes)}.",),
        captions={
            "study7_swap_gradient": "Expected gradient on psi of the task loss and of the "
            "input-level swap, with fixed and with optimal heads; points: batch means +- 2 SE."
        },
    )
