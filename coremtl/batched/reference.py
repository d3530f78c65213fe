"""The per-model loop that a batched run (:mod:`coremtl.batched.training`) must reproduce: each
model trained alone as one library :class:`~coremtl.representation.DualStreamModel`, through
:func:`coremtl.balancers.make_balancer`, :func:`coremtl.cka.linear_cka` (or
:func:`coremtl.cka.conditional_linear_cka` given the batch's labels),
:func:`coremtl.counterfactual.input_counterfactual_predictions` and
:func:`coremtl.grounding.reconstruction_loss`, on the same draws (:mod:`coremtl.batched.draws`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from coremtl.batched.draws import Draws
from coremtl.batched.training import Settings, TermWeights, make_optimizer


def loop_reference(
    modules: Sequence[torch.nn.Module],
    x: Tensor,
    y: Tensor,
    settings: Settings,
    weights: TermWeights,
    random: Draws,
) -> None:
    """Train each library module alone, in place, on its slice of the data and the draws.

    PCGrad's visiting orders come from torch's global generator inside torchjd and cannot be
    shared; with ``K = 2`` tasks the order does not matter. RLW of model ``m`` is the library's
    balancer seeded with ``random.balancer_seed(m)``.
    """
    from coremtl.balancers import make_balancer
    from coremtl.cka import conditional_linear_cka, linear_cka
    from coremtl.counterfactual import input_counterfactual_predictions
    from coremtl.grounding import reconstruction_loss as library_reconstruction

    steps = [random.at(step) for step in range(settings.steps)]
    for m, module in enumerate(modules):
        names = list(module.task_names)
        name = settings.balancer_of(m)
        options = settings.options_of(name)
        if name == "rlw":
            options = {"seed": random.balancer_seed(m)}
        balancer = make_balancer(name, names, **options)
        params = [p for p in module.parameters() if p.requires_grad]
        shared = [p for p in module.shared_parameters() if p.requires_grad]
        optimizer = make_optimizer(settings, params)
        l_cka, l_cfa, l_rec = weights.row(m)
        conditional = bool(torch.as_tensor(weights.conditional).reshape(-1).expand(len(modules))[m])
        for step in range(settings.steps):
            rows, permutations, _ = steps[step]
            batch_x, batch_y = x[m], y[m]
            if rows is not None:
                batch_x, batch_y = batch_x[rows[m]], batch_y[rows[m]]
            optimizer.zero_grad(set_to_none=True)
            forward = module(batch_x)
            losses = {
                name: (forward.predictions[name][:, 0] - batch_y[:, t]).square().mean()
                for t, name in enumerate(names)
            }
            extra = []
            if l_cka:
                cka = (
                    conditional_linear_cka(forward.z_s, forward.z_r, batch_y)
                    if conditional
                    else linear_cka(forward.z_s, forward.z_r)
                )
                extra.append(l_cka * cka.clamp(min=0.0))
            if l_cfa:
                swapped = input_counterfactual_predictions(
                    module, forward.z_s, forward.z_r, permutations[m]
                )
                cfa = [
                    (swapped[name][:, 0] - batch_y[:, t]).square().mean()
                    for t, name in enumerate(names)
                ]
                extra.append(l_cfa * torch.stack(cfa).mean())
            if l_rec:
                reconstruction = module.decode(forward.z_s, forward.z_r)
                extra.append(l_rec * library_reconstruction(reconstruction, batch_x))
            balancer.backward(losses, [forward.z_s], shared, sum(extra) if extra else None)
            optimizer.step()
