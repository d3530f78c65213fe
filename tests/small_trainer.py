"""A small CORE-MTL run on the trainer, shared by the trainer's tests: a dual-stream MLP with batch
norm, dropout and a decoder, two squared-error tasks, the CORE-MTL terms (input CFA drawn with
probability 0.5) and :func:`trainer` putting them together with settings of one's choice."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from coremtl.balancers import make_balancer
from coremtl.grounding import MLPDecoder
from coremtl.objective import CoreMTLObjective
from coremtl.representation import mlp_dual_stream
from coremtl.trainer import Trainer, TrainerConfig

TASKS = ("a", "b")


def make_model() -> nn.Module:
    torch.manual_seed(0)
    model = mlp_dual_stream(
        4,
        list(TASKS),
        hidden=(12,),
        semantic_dim=3,
        residual_dim=3,
        decoder=MLPDecoder(3, 3, 4, (8,)),
        batch_norm=True,
    )
    model.encoder.append(nn.Dropout(0.2))
    return model


def mse_of_column(column: int):
    def loss(prediction, batch):
        return F.mse_loss(prediction[:, 0], batch["y"][:, column])

    return loss


def task_losses():
    return {name: mse_of_column(i) for i, name in enumerate(TASKS)}


def objective() -> CoreMTLObjective:
    return CoreMTLObjective(
        cka_weight=0.1,
        cka_warmup_steps=3,
        cfa_weight=0.5,
        cfa_probability=0.5,
        reconstruction_weight=1.0,
        cfa_mode="input",
    )


def trainer(tmp_path, balancer: str = "ew", **config) -> Trainer:
    settings = {"epochs": 2, "batch_size": 12, "warmup_steps": 2, "progress": False, "seed": 3}
    settings.update(config)
    return Trainer(
        make_model(),
        task_losses(),
        make_balancer(balancer, list(TASKS)),
        TrainerConfig(**settings),
        tmp_path,
        objective=objective(),
    )
