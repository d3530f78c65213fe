"""Model B of the regime map: dual-stream MLPs with streams of width ``k`` on the SCM of setting S.

Per unit (cell ``(v, rho, mixing)`` and seed): ``Sigma_s = I_k``, ``Sigma_S = v I_k``, source-only
correlation ``rho``, a Haar mixing ``G`` and, for ``mixing = 'nonlinear'``, the invertible
``g(u) = Q (u + a tanh u)`` (:mod:`scm.mixing`). Every method of the study trains on the same
source samples from the same initialisation (:class:`coremtl.batched.StackedMLP`), all models as
one batched computation. Measured by Monte Carlo on ``evaluation`` fresh samples per environment
(common random numbers across methods, shift sizes and directions):

- source risk minus Bayes (``sigma^2``), held-out validation risk (training-domain validation);
- target risk and gap per direction and ``delta``: ``Z_r ~ N(0, v I + delta D)`` independent of
  ``Z_s``, ``D`` the seed's random PSD direction or the model's worst case to first order,
  ``D = H / ||H||_F`` with ``H = mean_t E_S[grad_{z_r} yhat_t grad_{z_r} yhat_t^T]``;
- the share of target points outside the source support: source Mahalanobis distance of
  ``[Z_s; Z_r]`` beyond the 99.9% quantile of ``chi^2_{2k}``;
- ``sin^2 psi_hat = sum E||d yhat / d z_r||^2 / sum E(||d yhat / d z_r||^2 + ||d yhat / d z_s||^2)``,
  the leakage over the semantic gain ``sqrt(sum E||d yhat/d z_r||^2 / sum E||d yhat/d z_s||^2)``,
  and the debiased stream CKA on source points.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from experiments.synthetic.regime_map.cells import Cell, grid
from experiments.synthetic.regime_map.config import Config
from experiments.synthetic.regime_map.methods import (
    GROUPS,
    METHODS,
    balancer_names,
    method_weights,
)
from experiments.synthetic.regime_map.model_a import Measured


@dataclass(frozen=True, eq=False)
class MLPUnit:
    """One cell and one paired seed of model B (``seed`` is the run's seed plus the seed's index)
    and its SCM draws; ``strength`` is the nonlinear mixing's ``a`` (0: linear)."""

    cell: Cell
    seed: int
    beta: np.ndarray
    mixing: np.ndarray
    rotation: np.ndarray
    strength: float
    direction: np.ndarray


def measured_cells(config: Config) -> list[Cell]:
    """The cells of model B, in grid order."""
    return grid(config.mlp.variances, config.mlp.rhos, config.mlp.mixings)


def unit_cells(config: Config) -> list[Cell]:
    """The cell of every unit of model B, in unit order."""
    return [cell for cell in measured_cells(config) for _ in range(config.mlp.seeds)]


def mlp_units(config: Config, seed: int) -> list[MLPUnit]:
    """``mlp.seeds`` units per cell of model B, in grid order; a seed's draws are the same in
    every cell."""
    from experiments.synthetic.regime_map.population import random_direction
    from scm.generate import haar_orthogonal

    mlp, k = config.mlp, config.k
    units = []
    for cell in measured_cells(config):
        for index in range(mlp.seeds):
            rng = np.random.default_rng([seed, index, 2])
            units.append(
                MLPUnit(
                    cell=cell,
                    seed=seed + index,
                    beta=rng.standard_normal((config.tasks, k)),
                    mixing=haar_orthogonal(2 * k, rng),
                    rotation=haar_orthogonal(2 * k, rng),
                    strength=mlp.nonlinear_strength if cell.start == "nonlinear" else 0.0,
                    direction=random_direction(k, rng),
                )
            )
    return units


def unit_scm(config: Config, unit: MLPUnit):
    """The unit's :class:`scm.model.LinearGaussianSCM` (with its nonlinear mixing, if any)."""
    from scm.mixing import NonlinearMixing
    from scm.model import LinearGaussianSCM, ResidualLaw

    k = config.k
    law = ResidualLaw(np.zeros(k), unit.cell.v * np.eye(k))
    nonlinear = NonlinearMixing(unit.rotation, unit.strength) if unit.strength else None
    return LinearGaussianSCM(
        sigma_s=np.eye(k),
        source=law,
        target=law,
        beta=unit.beta,
        noise_std=np.full(config.tasks, config.noise_std),
        mixing=unit.mixing,
        rho=unit.cell.correlation.rho,
        nonlinear=nonlinear,
    )


def observe(z: Tensor, mixing: Tensor, rotation: Tensor, strength: Tensor) -> Tensor:
    """``x = Q (u + a tanh u)``, ``u = G z``, per model (``a = 0``: the linear mixing ``G z``)."""
    u = torch.bmm(z, mixing.transpose(1, 2))
    nonlinear = torch.bmm(u + strength[:, None, None] * torch.tanh(u), rotation.transpose(1, 2))
    return torch.where(strength[:, None, None] > 0, nonlinear, u)


def _subset(model, rows: slice):
    view = copy.copy(model)
    view.params = {name: value[rows] for name, value in model.params.items()}
    return view


def _latents(n: int, generator: torch.Generator, k: int, tasks: int):
    z_s = torch.randn(n, k, generator=generator)
    xi = torch.randn(n, k, generator=generator)
    noise = torch.randn(n, tasks, generator=generator)
    return z_s, xi, noise


def evaluate_chunk(
    model, units: list[MLPUnit], config: Config, deltas, methods: int
) -> dict[str, Tensor]:
    """Monte Carlo measurements of the ``methods x len(units)`` models of ``model`` (method-major)."""
    from scipy.stats import chi2

    from coremtl.batched.terms import debiased_cka

    mlp, k, tasks = config.mlp, config.k, config.tasks
    count = len(units)
    n = mlp.evaluation
    threshold = float(chi2.ppf(0.999, 2 * k))
    device = next(iter(model.params.values())).device
    out: dict[str, list] = {}
    for u_index, unit in enumerate(units):
        generator = torch.Generator().manual_seed(unit.seed * 7919 + 13)
        z_s, xi, noise = (t.to(device) for t in _latents(n, generator, k, tasks))
        v, rho = unit.cell.v, unit.cell.correlation.rho
        source_r = math.sqrt(v) * (rho * z_s + math.sqrt(1 - rho**2) * xi)
        beta = torch.as_tensor(unit.beta, dtype=torch.float32, device=device)
        y = z_s @ beta.T + config.noise_std * noise
        rows = slice(u_index, methods * count, count)
        view = _subset(model, rows)
        mixing = torch.as_tensor(unit.mixing, dtype=torch.float32, device=device)
        mixing = mixing.expand(methods, 2 * k, 2 * k)
        rotation = torch.as_tensor(unit.rotation, dtype=torch.float32, device=device)
        rotation = rotation.expand_as(mixing)
        strength = torch.full((methods,), float(unit.strength), device=device)

        def risk(z, view=view, mixing=mixing, rotation=rotation, strength=strength, labels=y):
            x = observe(z.expand(methods, -1, -1), mixing, rotation, strength)
            with torch.no_grad():
                predictions = view.predict(view.encode_semantic(x))
            return (predictions - labels).square().mean(dim=(1, 2))

        source = risk(torch.cat([z_s, source_r], 1))
        record = {"source_risk": source, "source_excess": source - config.noise_std**2}
        points = torch.cat([z_s, source_r], 1)[: mlp.jacobian_points]
        z = points.expand(methods, -1, -1).clone().requires_grad_(True)
        x = observe(z, mixing, rotation, strength)
        predictions = view.predict(view.encode_semantic(x))
        grads = [torch.autograd.grad(predictions[..., t].sum(), z, retain_graph=True)[0]
                 for t in range(tasks)]  # fmt: skip
        jac = torch.stack(grads, dim=2)
        residual_m = jac[..., k:].square().sum(dim=(1, 2, 3))
        semantic_m = jac[..., :k].square().sum(dim=(1, 2, 3))
        record["sin2_psi"] = residual_m / (residual_m + semantic_m)
        record["leakage_ratio"] = (residual_m / semantic_m.clamp_min(1e-30)).sqrt()
        hessian = torch.einsum("mnti,mntj->mij", jac[..., k:], jac[..., k:]) / jac.shape[1]
        worst = hessian / hessian.square().sum((1, 2)).sqrt().clamp_min(1e-30)[:, None, None]
        worst = torch.nan_to_num(worst.detach(), nan=0.0, posinf=0.0, neginf=0.0)
        with torch.no_grad():
            z_s_hat, z_r_hat = view.encode(x.detach())
            record["stream_cka"] = debiased_cka(z_s_hat, z_r_hat)
        random = torch.as_tensor(unit.direction, dtype=torch.float32, device=device)
        source_cov = np.block([[np.eye(k), rho * math.sqrt(v) * np.eye(k)],
                               [rho * math.sqrt(v) * np.eye(k), v * np.eye(k)]])  # fmt: skip
        precision = torch.as_tensor(np.linalg.inv(source_cov), dtype=torch.float32, device=device)
        eye = torch.eye(k, device=device)
        for kind in ("random", "worst"):
            for delta in deltas:
                direction = random.expand(methods, k, k) if kind == "random" else worst.detach()
                cov = v * eye + delta * direction
                factor = torch.linalg.cholesky(cov + 1e-9 * eye)
                target_r = torch.bmm(xi.expand(methods, -1, -1), factor.transpose(1, 2))
                target_z = torch.cat([z_s.expand(methods, -1, -1), target_r], dim=2)
                target = risk(target_z)
                record[f"target|{kind}|{delta}"] = target
                record[f"gap|{kind}|{delta}"] = target - source
                distance = torch.einsum("mni,ij,mnj->mn", target_z, precision, target_z)
                record[f"outside_support|{kind}|{delta}"] = (distance > threshold).float().mean(1)
        for key, value in record.items():
            out.setdefault(key, []).append(value.detach())
    return {key: torch.stack(values, dim=1) for key, values in out.items()}


def units_per_chunk(config: Config) -> int:
    """Units trained as one batch: ``chunk`` models at most, every method of a unit together."""
    return max(1, config.mlp.chunk // len(METHODS))


def sample_chunk(
    config: Config, seed: int, optimiser: str, start: int, size: int, device="cpu"
) -> Measured:
    """Model B with ``optimiser`` on the units ``start .. start + size - 1``, on ``device``: train
    every method from the same initialisation, measure at the short and long step counts.
    Returns ``{length: {method: {key: values over the chunk's units}}}``."""
    from coremtl.batched import Settings, StackedMLP, draws, train
    from scm.sampling import sample

    mlp = config.mlp
    schedule = mlp.schedules[optimiser]
    lengths = {schedule.short: "short", schedule.long: "long"}
    chunk = mlp_units(config, seed)[start : start + size]
    count = len(chunk)
    splits = []
    for n, offset in ((mlp.train, 0), (mlp.validation, 500_000)):
        drawn = [sample(unit_scm(config, u), n, "source", [seed, u.seed, offset, 3]) for u in chunk]
        x = torch.as_tensor(np.stack([d.x for d in drawn]), dtype=torch.float32)
        y = torch.as_tensor(np.stack([d.y for d in drawn]), dtype=torch.float32)
        splits.append((x.to(device), y.to(device)))
    (x, y), (x_val, y_val) = splits
    generator = torch.Generator().manual_seed(seed * 100_003 + start)
    base = StackedMLP(
        count, 2 * config.k, mlp.hidden, config.k, config.tasks, mlp.decoder_hidden, generator
    )
    collected: dict = {}
    for group in GROUPS:
        tile = len(group)
        model = copy.copy(base)
        model.params = {
            key: value.detach().to(device).repeat(tile, 1, 1).requires_grad_(True)
            for key, value in base.params.items()
        }
        settings = Settings(
            steps=schedule.long,
            lr=schedule.lr,
            optimizer=optimiser,
            weight_decay=schedule.weight_decay,
            balancer=balancer_names(group, count),
        )
        weights = method_weights(config, group, count, device, torch.float32)
        random = draws(settings, count * tile, x.shape[1], config.tasks, seed + start)
        saved = train(
            model,
            x.repeat(tile, 1, 1),
            y.repeat(tile, 1, 1),
            settings,
            weights,
            random,
            tuple(lengths),
        )
        for step, params in saved.items():
            model.params = params
            numbers = evaluate_chunk(model, chunk, config, config.deltas, tile)
            with torch.no_grad():
                prediction = model.predict(model.encode_semantic(x_val.repeat(tile, 1, 1)))
                val = (prediction - y_val.repeat(tile, 1, 1)).square().mean(dim=(1, 2))
            numbers["validation"] = val.reshape(tile, count)
            for index, method in enumerate(group):
                target = collected.setdefault(lengths[step], {}).setdefault(method, {})
                for key, value in numbers.items():
                    target[key] = value.reshape(tile, count)[index].cpu().numpy()
    return collected
