"""Study 8's summary, registered predictions and finding: FLOPs and backward passes per method
against K, the terms' cost ``A(K) = F_CORE-MTL(K) - F_EW(K)`` and the rule on it."""

from __future__ import annotations

from experiments.study import (
    FAILS,
    HOLDS,
    QUALIFIED,
    Finding,
    Outcome,
    Prediction,
    Table,
    held_text,
)
from experiments.synthetic.study8_cost.steps import METHODS, Config
from proofs.headline import Headline


def summarise(config: Config, measurements: dict) -> dict:
    """Per method, lists in the order of ``task_counts``: FLOPs per step, the encoder's backward
    FLOPs and backward passes; the growth ``F(K_max) / F(K_min)``; the terms' cost ``A(K)``."""
    counts = list(config.task_counts)
    rows = {(row["method"], row["tasks"]): row for row in measurements["rows"]}
    methods = {}
    for method in METHODS:
        chosen = [rows[(method, count)] for count in counts]
        backward = [r["encoder_flops"] - r["encoder_forward_flops"] for r in chosen]
        one_pass = [r["backward_pass_flops"] for r in chosen]
        flops = [r["step_flops"] for r in chosen]
        methods[method] = {
            "flops": flops,
            "encoder_backward_flops": backward,
            "backward_pass_flops": one_pass,
            "backward_passes": [b / p for b, p in zip(backward, one_pass, strict=True)],
            "growth": flops[-1] / flops[0],
        }
    ew, core = methods["ew"]["flops"], methods["core-mtl"]["flops"]
    added = [c - e for c, e in zip(core, ew, strict=True)]
    return {
        "task_counts": counts,
        "methods": methods,
        "added": {
            "flops": added,
            "growth": added[-1] / added[0],
            "increase": added[-1] - added[0],
            "per_task": (added[-1] - added[0]) / (counts[-1] - counts[0]),
        },
        "ew_increase": ew[-1] - ew[0],
    }


def _passes_text(summary: dict, method: str) -> str:
    passes = summary["methods"][method]["backward_passes"]
    return f"{method} " + ", ".join(f"{p:g}" for p in passes)


def predictions(config: Config) -> list[Prediction]:
    counts = ", ".join(str(k) for k in config.task_counts)

    def core_passes(summary: dict) -> Outcome:
        methods = summary["methods"]
        core, ew = (methods[m]["encoder_backward_flops"] for m in ("core-mtl", "ew"))
        text = f"passes at K = {counts}: {_passes_text(summary, 'core-mtl')}; "
        return Outcome(core == ew, text + _passes_text(summary, "ew"))

    def jacobian_passes(summary: dict) -> Outcome:
        pcgrad = summary["methods"]["pcgrad"]
        held = all(
            backward == count * one
            for backward, one, count in zip(
                pcgrad["encoder_backward_flops"],
                pcgrad["backward_pass_flops"],
                config.task_counts,
                strict=True,
            )
        )
        return Outcome(held, f"passes at K = {counts}: {_passes_text(summary, 'pcgrad')}")

    def added_cost(summary: dict) -> Outcome:
        increase, heads = summary["added"]["increase"], summary["ew_increase"]
        return Outcome(
            increase <= heads,
            f"A grows by {increase:,} FLOPs from K = {config.task_counts[0]} to "
            f"{config.task_counts[-1]}, an EW step by {heads:,}",
        )

    return [
        Prediction(
            "P1",
            "CORE-MTL's step makes as many backward passes through the shared encoder as EW's "
            "at every K",
            "the terms are added to the scalar loss that EW differentiates once",
            core_passes,
        ),
        Prediction(
            "P2",
            "PCGrad's step makes K backward passes through the shared encoder",
            "a Jacobian balancer needs one vector-Jacobian product per task",
            jacobian_passes,
        ),
        Prediction(
            "P3",
            "the FLOPs CORE-MTL's terms add to an EW step grow from the smallest to the largest K "
            "by at most what the extra tasks add to the EW step itself",
            "CKA and reconstruction act on the streams, whose sizes do not depend on K; "
            "feature-level CFA runs the K heads once more",
            added_cost,
        ),
    ]


def _compared(value: float, reference: float) -> str:
    return "less than" if value < reference else "equal to" if value == reference else "more than"


def _count(number: float, noun: str) -> str:
    return f"{number:g} {noun}" + ("" if number == 1 else "es")


def conclude(config: Config, summary: dict, outcomes: list[Outcome]) -> Finding:
    """*holds* when the terms add no backward pass (P1) and a cost that does not change with K;
    *holds only as stated here* when that cost grows, but by no more than the extra tasks add to
    an EW step (P3); *fails* otherwise."""
    held = {outcome.id: outcome.held for outcome in outcomes}
    added, methods = summary["added"], summary["methods"]
    if not (held["P1"] and held["P3"]):
        verdict = FAILS
    else:
        verdict = HOLDS if added["increase"] == 0 else QUALIFIED
    low, high = config.task_counts[0], config.task_counts[-1]
    pcgrad = methods["pcgrad"]
    headline = Headline(
        f"FLOPs CORE-MTL's terms add per step, K={high} / K={low}",
        added["growth"],
        threshold=f"1 = flat; PCGrad's whole step {pcgrad['growth']:.2f}",
    )
    passes = {m: methods[m]["backward_passes"] for m in ("core-mtl", "ew")}
    result = (
        f"CORE-MTL's terms add {added['flops'][0] / 1e6:.2f} M FLOPs per step at K = {low} and "
        f"{added['flops'][-1] / 1e6:.2f} M at K = {high} ({added['per_task']:+,.0f} per extra "
        f"task, {_compared(added['increase'], summary['ew_increase'])} what each extra task adds "
        f"to an EW step) and make {_count(passes['core-mtl'][-1], 'backward pass')} through the "
        f"shared encoder (EW: {passes['ew'][-1]:g}). PCGrad's step makes "
        f"{_count(pcgrad['backward_passes'][-1], 'backward pass')} at K = {high} and its FLOPs "
        f"grow {pcgrad['growth']:.2f}x from K = {low}."
    )
    rows = [
        (
            method,
            f"{entry['flops'][0] / 1e6:.2f}",
            f"{entry['flops'][-1] / 1e6:.2f}",
            f"{entry['growth']:.2f}",
            f"{entry['backward_passes'][0]:g}, {entry['backward_passes'][-1]:g}",
        )
        for method, entry in methods.items()
    ]
    extra_passes = [c - e for c, e in zip(passes["core-mtl"], passes["ew"], strict=True)]
    rows.append(
        (
            "CORE-MTL's terms (core-mtl - ew)",
            f"{added['flops'][0] / 1e6:.2f}",
            f"{added['flops'][-1] / 1e6:.2f}",
            f"{added['growth']:.2f}",
            f"{extra_passes[0]:g}, {extra_passes[-1]:g}",
        )
    )
    table = Table(
        ("method", f"M FLOPs/step, K={low}", f"K={high}", "growth", "encoder backward passes"),
        tuple(rows),
    )
    return Finding(
        verdict,
        headline,
        result,
        table,
        details=(
            f"Predictions: {held_text(outcomes)}.",
            "FLOPs of one step counted by torch.utils.flop_counter.FlopCounterMode; the wall "
            "times per step are in the results file only.",
        ),
        captions={
            "study8_cost": "FLOPs of one training step (left) and backward passes through the "
            "shared encoder (right) against the number of tasks K; dashed: the FLOPs CORE-MTL's "
            "terms add to an EW step."
        },
    )
