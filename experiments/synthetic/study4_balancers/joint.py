"""Study 4, part C: joint training of heads and angle.

Heads and psi from one initialisation, plain gradient steps with every balancer, several source
residual variances ``v``: the psi trajectory, the final psi and the OOD gap (closed form, S1) it
leaves for a target residual variance ``v + target_shift``.
"""

from __future__ import annotations

import math

import numpy as np

from experiments.synthetic.study4_balancers.setting import (
    Config,
    balanced_step,
    make_seeded_balancer,
    model_at,
    source_batch,
    study_scm,
)


def joint_training(config: Config, name: str, v: float, seed: int) -> dict:
    """Heads and psi trained together by balancer ``name``: the recorded psi trajectory, the
    final psi and the mean OOD gap over tasks."""
    import torch

    from experiments.synthetic.angle_model import head_arrays
    from scm.closed_form import ood_gap

    torch.manual_seed(seed)
    batch = source_batch(config, v, seed)
    model = model_at(config, v, config.psi_start, seed)
    psi = model.encoder.psi
    balancer = make_seeded_balancer(name, config, seed)
    parameters = [psi, *model.heads.parameters()]
    optimizer = torch.optim.SGD([*parameters, *balancer.parameters()], lr=config.joint_lr)
    trajectory = [float(psi.detach())]
    for step in range(1, config.joint_steps + 1):
        optimizer.zero_grad(set_to_none=True)
        balanced_step(model, balancer, batch, [psi])
        optimizer.step()
        with torch.no_grad():
            psi.clamp_(0.0, math.pi / 2)
        if step % config.record_every == 0:
            trajectory.append(float(psi.detach()))
    weights, bias = head_arrays(model)
    target = study_scm(config, v, v + config.target_shift)
    gap = ood_gap(target, float(psi.detach()), weights, bias)
    return {"trajectory": trajectory, "final_psi": float(psi.detach()), "gap": float(np.mean(gap))}
