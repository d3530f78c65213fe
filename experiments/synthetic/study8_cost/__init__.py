"""Study 8: the cost of a training step against the number of tasks K (paper: PCGrad about 4x from
K = 10 to 40, CORE-MTL flat).

One dual-stream MLP per ``K`` (:func:`coremtl.representation.mlp_dual_stream` with an MLP
decoder and its ``K`` linear heads as one :class:`~coremtl.representation.LinearHeads`, the ``K``
losses from one call), inputs from a random SCM of setting S with ``K`` tasks, one minibatch. A
step is the toolkit trainer's: forward, task losses, (for CORE-MTL) the CKA, feature-level CFA and
reconstruction terms, the balancer's backward and an Adam step.

The cost is counted in units that mean the same on any machine:

- ``F_m(K)``, the floating-point operations of one step of method ``m``, counted by
  :class:`torch.utils.flop_counter.FlopCounterMode` (matrix products: ``2 n m p`` for an
  ``(n, m) x (m, p)`` product, forward and backward);
- the backward passes through the shared encoder: the encoder's FLOPs in the step less those of
  its forward, divided by the FLOPs of one backward pass of a scalar through it. Equal Weighting
  makes one; a Jacobian balancer (PCGrad, torchjd's ``mtl_backward``) one per task.

The terms' cost is ``A(K) = F_CORE-MTL(K) - F_EW(K)``. The CKA and reconstruction terms act on
the streams, whose sizes do not depend on ``K``; feature-level CFA runs the ``K`` heads once more
on the swapped ``Z_s``, so ``A`` may grow by at most what the extra tasks add to an EW step,
``A(K_max) - A(K_min) <= F_EW(K_max) - F_EW(K_min)``. Wall times (median over ``repeats`` timed
blocks of ``steps`` steps, after one warm-up block) are kept in the measurements only: they differ
between machines and runs, and neither the figure nor the report reads them.

Modules: :mod:`~.steps` (the trainer, the counts and timings of a step), :mod:`~.finding`
(summary, predictions, finding), :mod:`~.plot` (figure).
"""

from __future__ import annotations

from experiments.study import QUALIFIED, Study
from experiments.synthetic.study8_cost.finding import conclude, predictions, summarise
from experiments.synthetic.study8_cost.plot import plot
from experiments.synthetic.study8_cost.steps import CONFIGS, METHODS, Config, measure, step_cost

STUDY = Study(
    number=8,
    name="Step cost against the number of tasks",
    statements=("cost",),
    claim="CORE-MTL's terms add a cost per step that does not grow with the number of tasks (the "
    "Jacobian balancers' does)",
    expected=QUALIFIED,
    configs=CONFIGS,
    predictions=predictions,
    measure=measure,
    summarise=summarise,
    conclude=conclude,
    plot=plot,
)


def main(args) -> dict:
    """``coremtl bench mtl-cost``: wall time (median of the blocks) and FLOPs per step, each as a
    ratio to the smallest K (``--quick``: the smoke setting)."""
    import statistics
    from dataclasses import replace

    config = replace(CONFIGS["smoke" if args.quick else "fast"], repeats=args.repeats)
    result = STUDY.run(config, 0, args.device)
    rows = {(row["method"], row["tasks"]): row for row in result["measurements"]["rows"]}
    print(f"{'method':10s} {'per step':9s} " + " ".join(f"K={k:<6d}" for k in config.task_counts))
    for method in METHODS:
        times = [
            statistics.median(rows[(method, k)]["seconds_per_step"]) for k in config.task_counts
        ]
        flops = result["summary"]["methods"][method]["flops"]
        for unit, values in (("time", times), ("FLOPs", flops)):
            ratios = " ".join(f"{value / values[0]:<8.2f}" for value in values)
            print(f"{method:10s} {unit:9s} {ratios}")
    print(result["finding"]["result"])
    return result


__all__ = [
    "CONFIGS",
    "METHODS",
    "STUDY",
    "Config",
    "conclude",
    "main",
    "plot",
    "predictions",
    "step_cost",
    "summarise",
]
