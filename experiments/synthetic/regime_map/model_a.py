"""Model A of the regime map: the setting-S angle encoder ``R(psi) G^T`` with heads on ``Zhat_s``
and the exact tied decoder, trained on the population risk (the pre-registration) or on
``a_train`` source samples (the measurement), evaluated in closed form (S1, :mod:`.population`).

A unit is one cell and one paired seed. The SCM draws of a unit (``beta``, ``G``, the heads at
the start, the random shift direction) depend on the run's seed and the seed's index only, so cells
are paired as well as methods. Its samples depend on the cell's place in the grid and the seed's
index, so a unit has the same data whatever the number of seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from experiments.synthetic.regime_map import population
from experiments.synthetic.regime_map.cells import Cell, grid
from experiments.synthetic.regime_map.config import Config
from experiments.synthetic.regime_map.methods import GROUPS, balancer_names, method_weights
from scm.seeds import derive_seed

Measured = dict[str, dict[str, dict[str, np.ndarray]]]
"""``{length: {method: {measurement: values per unit}}}``, length ``short`` or ``long``."""


@dataclass(frozen=True, eq=False)
class AngleUnit:
    """One cell and one paired seed of model A: the cell's place in the grid (``position``), the
    seed's ``index`` and the SCM draws."""

    cell: Cell
    position: int
    index: int
    beta: np.ndarray
    mixing: np.ndarray
    head_w: np.ndarray
    direction: np.ndarray


def measured_cells(config: Config) -> list[Cell]:
    """The cells of model A's measurement, in grid order: S11's correlations, then S13's."""
    residual = grid(config.variances, config.rhos, config.starts)
    return residual + grid(config.label_variances, config.loadings, config.starts, "label")


def angle_units(config: Config, seed: int, cells: list[Cell], seeds: int) -> list[AngleUnit]:
    """``seeds`` units per cell of ``cells``, in that order."""
    from scm.generate import haar_orthogonal

    units = []
    for position, cell in enumerate(cells):
        for index in range(seeds):
            rng = np.random.default_rng([seed, index, 1])
            k, tasks = config.k, config.tasks
            units.append(
                AngleUnit(
                    cell=cell,
                    position=position,
                    index=index,
                    beta=rng.standard_normal((k, tasks)),
                    mixing=haar_orthogonal(2 * k, rng),
                    head_w=config.head_scale * rng.standard_normal((k, tasks)) / math.sqrt(k),
                    direction=population.random_direction(k, rng),
                )
            )
    return units


def unit_tensors(config: Config, units: list[AngleUnit], device="cpu") -> dict[str, Tensor]:
    """The units' draws and cell values stacked into float64 tensors on ``device``."""
    arrays = {
        "beta": np.stack([u.beta for u in units]),
        "mixing": np.stack([u.mixing for u in units]),
        "head_w": np.stack([u.head_w for u in units]),
        "direction": np.stack([u.direction for u in units]),
        "v": np.array([u.cell.v for u in units]),
        "rho": np.array([u.cell.correlation.rho for u in units]),
        "loading": np.array([u.cell.correlation.loading for u in units]),
        "psi0": np.array([float(u.cell.start) for u in units]),
        "noise_var": np.full(len(units), config.noise_std**2),
    }
    return {
        key: torch.as_tensor(value, dtype=torch.float64).to(device) for key, value in arrays.items()
    }


def angle_scm(config: Config, unit: AngleUnit):
    """The unit's :class:`scm.model.LinearGaussianSCM` (the source law of its samples)."""
    from scm.model import LinearGaussianSCM, ResidualLaw

    k = config.k
    law = ResidualLaw(np.zeros(k), unit.cell.v * np.eye(k))
    return LinearGaussianSCM(
        sigma_s=np.eye(k),
        source=law,
        target=law,
        beta=unit.beta.T,
        noise_std=np.full(config.tasks, config.noise_std),
        mixing=unit.mixing,
        rho=unit.cell.correlation.rho,
    )


def source_sample(config: Config, unit: AngleUnit, size: int, stream: int):
    """``size`` source samples ``(x, y)`` of the unit: those of :func:`angle_scm`, with the labels'
    copy ``A Y`` (:func:`.population.label_loading`) added to ``Z_r`` (and so to
    ``x = G [Z_s; Z_r]``) in a ``label`` cell."""
    from scm.sampling import sample

    scm = angle_scm(config, unit)
    drawn = sample(scm, size, "source", stream)
    loading = unit.cell.correlation.loading
    if loading == 0:
        return drawn.x, drawn.y
    tensors = unit_tensors(config, [unit])
    copy = population.label_loading(tensors["loading"], tensors["beta"], tensors["noise_var"])
    z_r = drawn.z_r + drawn.y @ copy[0].numpy().T
    return np.concatenate([drawn.z_s, z_r], axis=1) @ scm.mixing.T, drawn.y


def angle_data(config: Config, units: list[AngleUnit], seed: int) -> tuple[dict, dict]:
    """Training and held-out validation source samples of every unit (float64 tensors)."""
    splits = []
    for size, split in ((config.a_train, "train"), (config.a_validation, "validation")):
        xs, ys = [], []
        for unit in units:
            stream = derive_seed(seed, "regime map A", split, unit.position, unit.index)
            x, y = source_sample(config, unit, size, stream)
            xs.append(x)
            ys.append(y)
        splits.append({"x": torch.as_tensor(np.stack(xs)), "y": torch.as_tensor(np.stack(ys))})
    return splits[0], splits[1]


def angle_runs(
    config: Config,
    units: list[AngleUnit],
    optimiser: str,
    draws_seed: int,
    data: dict | None = None,
    device="cpu",
) -> dict[str, dict[str, dict[str, Tensor]]]:
    """Train every method of model A on ``units`` with ``optimiser``: on ``data`` (the
    measurement) or, when ``data`` is None, on the exact population risk (the prediction).
    Returns ``{method: {length: params}}`` at the short and long step counts."""
    from coremtl.batched import Settings, StackedAngle, draws, train, train_objective

    tensors = unit_tensors(config, units, device)
    schedule = config.schedules[optimiser]
    lengths = {schedule.short: "short", schedule.long: "long"}
    count = len(units)
    out: dict = {}
    for methods in GROUPS:
        reps = len(methods)

        def tile(t, reps=reps):
            return t.repeat(reps, *([1] * (t.ndim - 1)))

        head_b = torch.zeros(count * reps, 1, config.tasks, dtype=torch.float64, device=device)
        model = StackedAngle(
            tile(tensors["mixing"]), tile(tensors["psi0"]), tile(tensors["head_w"]), head_b
        )
        settings = Settings(
            steps=schedule.long,
            lr=schedule.lr,
            optimizer=optimiser,
            weight_decay=schedule.weight_decay,
            balancer=balancer_names(methods, count),
        )
        weights = method_weights(config, methods, count, device)
        if data is None:
            moments = population.source_moments(
                tensors["v"], tensors["rho"], tensors["beta"], tensors["loading"],
                tensors["noise_var"],
            )  # fmt: skip
            joint, label_noise, given = (tile(t) for t in moments)
            beta, noise = tile(tensors["beta"]), tile(tensors["noise_var"])[:, None]

            def objective(step, model=model, beta=beta, joint=joint, label_noise=label_noise,
                          given=given, noise=noise, weights=weights):  # fmt: skip
                psi = model.params["psi"]
                losses = population.task_risks(model.params, beta, joint, noise, label_noise)
                cka = torch.where(
                    torch.as_tensor(weights.conditional) != 0,
                    population.stream_cka(psi, given),
                    population.stream_cka(psi, joint),
                )
                swap = population.swap_loss(model.params, beta, joint, noise, label_noise)
                return losses, weights.cka * cka + weights.cfa * swap

            random = draws(settings, count * reps, 8, config.tasks, draws_seed)
            saved = train_objective(model, settings, objective, random, tuple(lengths))
        else:
            x, y = tile(data["x"].to(device)), tile(data["y"].to(device))
            random = draws(settings, count * reps, x.shape[1], config.tasks, draws_seed)
            saved = train(model, x, y, settings, weights, random, tuple(lengths))
        for index, method in enumerate(methods):
            rows = slice(index * count, (index + 1) * count)
            out[method] = {
                lengths[step]: {key: value[rows] for key, value in params.items()}
                for step, params in saved.items()
            }
    return out


def validation_risk(params: dict, tensors: dict[str, Tensor], validation: dict) -> np.ndarray:
    """Held-out source risk (mean over tasks) of each trained angle model."""
    from coremtl.batched import StackedAngle

    device = params["psi"].device
    x, y = validation["x"].to(device), validation["y"].to(device)
    with torch.no_grad():
        model = StackedAngle(tensors["mixing"], params["psi"], params["head_w"], params["head_b"])
        predictions = model.predict(model.encode_semantic(x))
        return population.to_numpy((predictions - y).square().mean(dim=(1, 2)))


def evaluate_runs(
    config: Config, units: list[AngleUnit], runs: dict, validation: dict | None = None
) -> Measured:
    """The closed-form measurements of model-A runs, ``{length: {method: {key: values}}}``; the
    validation risk is the held-out split's when given, else the population source risk."""
    out: dict = {}
    for method, by_length in runs.items():
        for length, params in by_length.items():
            tensors = unit_tensors(config, units, params["psi"].device)
            numbers = population.evaluate(params, tensors, config.deltas)
            numbers["validation"] = (
                validation_risk(params, tensors, validation)
                if validation is not None
                else numbers["source_risk"]
            )
            out.setdefault(length, {})[method] = numbers
    return out


def population_chunk(
    config: Config, seed: int, optimiser: str, cells: list[Cell], seeds: int, device="cpu"
) -> Measured:
    """Every method of model A trained on the exact population risk from the SCM and
    initialisation of ``seeds`` units per cell of ``cells`` (no samples): the pre-registration's
    dynamics."""
    units = angle_units(config, seed, cells, seeds)
    draws_seed = derive_seed(seed, "regime map A population", optimiser, bits=32)
    return evaluate_runs(
        config, units, angle_runs(config, units, optimiser, draws_seed, None, device)
    )


def sample_chunk(
    config: Config, seed: int, optimiser: str, start: int, size: int, device="cpu"
) -> Measured:
    """Every method of model A trained on samples with ``optimiser``, on the units
    ``start .. start + size - 1``; validation risk on a held-out source split."""
    units = angle_units(config, seed, measured_cells(config), config.seeds)[start : start + size]
    train_split, validation = angle_data(config, units, seed)
    draws_seed = derive_seed(seed, "regime map A", optimiser, start, bits=32)
    runs = angle_runs(config, units, optimiser, draws_seed, train_split, device)
    return evaluate_runs(config, units, runs, validation)


def unit_cells(config: Config) -> list[Cell]:
    """The cell of every measured unit, in unit order."""
    return [cell for cell in measured_cells(config) for _ in range(config.seeds)]
