"""Study 8's measurements: per method and number of tasks, the FLOPs of one training step, of the
shared encoder within it, of its forward and of one backward pass through it, and the wall times
of timed blocks of steps."""

from __future__ import annotations

import time
from dataclasses import dataclass

from experiments.study import Context

METHODS = ("ew", "pcgrad", "core-mtl")


@dataclass(frozen=True)
class Config:
    task_counts: tuple[int, ...] = (10, 20, 40)
    k: int = 8
    hidden: int = 128
    stream_dim: int = 16
    batch: int = 256
    steps: int = 10
    repeats: int = 3


CONFIGS = {
    "smoke": Config(task_counts=(2, 4), hidden=16, stream_dim=4, batch=32, steps=2, repeats=3),
    "fast": Config(),
    "full": Config(hidden=512, stream_dim=64, batch=512, steps=20, repeats=5),
}


def squared_loss_vector(predictions, batch):
    """``(mean_i (yhat_it - y_it)^2)_t``: every task's squared error from one call on the stacked
    predictions of :class:`coremtl.representation.LinearHeads`."""
    return (predictions.stacked - batch["y"]).square().mean(dim=0)


def trainer_for(config: Config, method: str, num_tasks: int, device: str, seed: int):
    """The trainer of ``method`` with ``num_tasks`` tasks, and its fixed batch."""
    import torch

    from coremtl.balancers import make_balancer
    from coremtl.grounding import MLPDecoder
    from coremtl.objective import CoreMTLObjective
    from coremtl.representation import mlp_dual_stream
    from coremtl.trainer import Trainer
    from experiments.synthetic.models import adam_settings, squared_loss_of
    from scm.generate import random_scm
    from scm.sampling import sample

    torch.manual_seed(seed)
    scm = random_scm(k=config.k, num_tasks=num_tasks, seed=seed)
    drawn = sample(scm, config.batch, "source", seed, backend="torch", device=device)
    batch = {"x": drawn["x"], "y": drawn["y"]}
    names = [f"t{index}" for index in range(num_tasks)]
    decoder = MLPDecoder(config.stream_dim, config.stream_dim, 2 * config.k, (config.hidden,))
    model = mlp_dual_stream(
        2 * config.k,
        names,
        hidden=(config.hidden, config.hidden),
        semantic_dim=config.stream_dim,
        residual_dim=config.stream_dim,
        decoder=decoder,
        fused_heads=True,
    )
    objective = (
        CoreMTLObjective(
            cka_weight=1.0,
            cka_warmup_steps=0,
            cfa_weight=1.0,
            cfa_probability=1.0,
            reconstruction_weight=1.0,
            cfa_mode="feature",
        )
        if method == "core-mtl"
        else None
    )
    trainer = Trainer(
        model,
        {name: squared_loss_of(index) for index, name in enumerate(names)},
        make_balancer("ew" if method == "core-mtl" else method, names, device=device),
        adam_settings(config.batch, 1e-3, seed, device),
        None,
        objective=objective,
        task_loss_vector=squared_loss_vector,
    )
    trainer.prepare(batch)
    return trainer, batch


def counted(function) -> tuple[int, dict[str, int]]:
    """Run ``function()`` under :class:`~torch.utils.flop_counter.FlopCounterMode`: the total
    FLOPs and the FLOPs per module name."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        function()
    per_module = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
    return counter.get_total_flops(), per_module


def step_cost(config: Config, method: str, num_tasks: int, device: str, seed: int) -> dict:
    """FLOPs of one step, of the shared encoder within it, of the encoder's forward and of one
    backward pass through it; and the wall seconds per step of each timed block."""
    import torch

    trainer, batch = trainer_for(config, method, num_tasks, device, seed)
    model, encoder = trainer.model, trainer.model.encoder

    def synchronise() -> None:
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(config.steps):
        trainer.train_step(batch)
    seconds = []
    for _ in range(config.repeats):
        synchronise()
        begin = time.perf_counter()
        for _ in range(config.steps):
            trainer.train_step(batch)
        synchronise()
        seconds.append((time.perf_counter() - begin) / config.steps)
    step_flops, per_module = counted(lambda: trainer.train_step(batch))
    with torch.no_grad():
        forward_flops, _ = counted(lambda: encoder(batch["x"]))
    output = encoder(batch["x"]).sum()
    backward_flops, _ = counted(lambda: torch.autograd.grad(output, list(encoder.parameters())))
    return {
        "method": method,
        "tasks": num_tasks,
        "step_flops": step_flops,
        "encoder_flops": per_module[f"{type(model).__name__}.encoder"],
        "encoder_forward_flops": forward_flops,
        "backward_pass_flops": backward_flops,
        "seconds_per_step": seconds,
    }


def measure(context: Context) -> dict:
    from tqdm import tqdm

    config = context.config
    jobs = [(method, count) for count in config.task_counts for method in METHODS]
    rows = [
        step_cost(config, method, count, context.device, context.seed)
        for method, count in tqdm(jobs, desc="study 8 cost", disable=not context.progress)
    ]
    return {"device": context.device, "rows": rows}
