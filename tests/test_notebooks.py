"""The teaching notebooks in ``notebooks/``: paired, stripped, and executable, with their key numbers
recomputed through the public API.

Each notebook is executed with nbclient in its own temporary directory, by a kernel whose spec (written
to a temporary folder by this module) runs ``sys.executable``, i.e. the interpreter of the current
virtual environment. Each notebook prints one line ``KEY_NUMBERS {json}``; the checks below rebuild
the same objects from the parameters recorded there and compare.

Tolerances: numbers that are the same float64 computation in the notebook and here agree to
``SAME_COMPUTATION_RTOL`` (only summation order may differ); identities of exact arithmetic hold to
``ROUNDING_ATOL`` times the scale of the terms; quantities from scipy quadratures (requested absolute
error 1e-8 in ``proofs.s5_lipschitz_bound``) to ``QUADRATURE_ATOL``; Monte Carlo estimates agree with their population value
within ``Z_BOUND`` standard errors (two-sided normal tail 6e-5 per comparison).
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import scm
from coremtl.cka import biased_cka_approximation_error, expected_biased_cka_independent
from experiments.synthetic import study4_balancers as study4

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
KEY_MARKER = "KEY_NUMBERS "
CELL_TIMEOUT_S = 300
SAME_COMPUTATION_RTOL = 1e-9
ROUNDING_ATOL = 1e-12
Z_BOUND = 4.0
QUADRATURE_ATOL = 1e-7
NOTEBOOKS = sorted(path.stem for path in NOTEBOOK_DIR.glob("[0-9][0-9]_*.py"))


@pytest.fixture(scope="session")
def kernel_spec_dir(tmp_path_factory) -> Path:
    """A kernelspec folder whose ``python3`` kernel runs this interpreter."""
    root = tmp_path_factory.mktemp("kernels")
    spec = root / "python3"
    spec.mkdir()
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "core-mtl venv", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel))
    return root


def execute(name: str, kernel_spec_dir: Path, workdir: Path) -> dict:
    """Run ``notebooks/{name}.ipynb`` top to bottom in ``workdir`` and return its key numbers.

    Raises ``nbclient.exceptions.CellExecutionError`` on the first failing cell. The kernel runs with
    one OpenMP thread so that parallel test workers do not oversubscribe the cores.
    """
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    specs = KernelSpecManager(kernel_dirs=[str(kernel_spec_dir)], ensure_native_kernel=False)
    manager = KernelManager(kernel_name="python3", kernel_spec_manager=specs)
    client = NotebookClient(
        notebook,
        km=manager,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(workdir)}},
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    client.execute(env=env)
    lines = [
        line
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.get("output_type") == "stream" and output.get("name") == "stdout"
        for line in output["text"].splitlines()
        if line.startswith(KEY_MARKER)
    ]
    assert len(lines) == 1, f"{name}: expected one line starting with {KEY_MARKER!r}"
    return json.loads(lines[0][len(KEY_MARKER) :])


def assert_within_standard_errors(estimate, expected, standard_error, what: str) -> None:
    estimate, expected = np.asarray(estimate, float), np.asarray(expected, float)
    allowed = Z_BOUND * np.asarray(standard_error, float) + ROUNDING_ATOL
    assert np.all(np.abs(estimate - expected) <= allowed), (
        f"{what}: {estimate} differs from {expected} by more than {Z_BOUND} standard errors"
    )


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_ipynb_is_the_stripped_pair_of_its_percent_script(name):
    import jupytext
    import nbformat

    script = jupytext.read(NOTEBOOK_DIR / f"{name}.py")
    paired = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    assert paired.metadata.get("jupytext", {}).get("formats") == "ipynb,py:percent"
    assert [(c.cell_type, c.source) for c in paired.cells] == [
        (c.cell_type, c.source) for c in script.cells
    ]
    for cell in paired.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def test_notebook_readme_has_one_line_per_notebook():
    readme = (NOTEBOOK_DIR / "README.md").read_text()
    for name in NOTEBOOKS:
        assert sum(line.count(f"{name}.py") > 0 for line in readme.splitlines()) == 1, name


def test_every_notebook_is_covered_by_a_key_number_check():
    assert set(NOTEBOOKS) == set(KEY_NUMBER_CHECKS)


def check_scm_and_mixing_angle(key: dict) -> None:
    """Notebook 1: the S1 gap of the source-optimal heads and the S2 worst case and counterexamples."""
    model = scm.random_scm(**key["model_args"])
    psi, delta = key["psi"], key["delta"]
    weights, bias = scm.optimal_heads(model, psi)
    closed_form = scm.ood_gap(model, psi, weights, bias)
    np.testing.assert_allclose(key["closed_form_gap"], closed_form, rtol=SAME_COMPUTATION_RTOL)
    scale = np.max(np.abs(closed_form)) + model.residual_shift_frobenius()
    np.testing.assert_allclose(key["formula_gap"], closed_form, atol=ROUNDING_ATOL * scale)
    assert_within_standard_errors(
        key["monte_carlo_gap"], closed_form, key["monte_carlo_se"], "Monte Carlo gap"
    )

    head = weights[0]
    worst = math.sin(psi) ** 2 * float(head @ head) * delta
    np.testing.assert_allclose(key["worst_case_gap"], worst, rtol=SAME_COMPUTATION_RTOL)
    np.testing.assert_allclose(key["worst_case_attained"], worst, rtol=SAME_COMPUTATION_RTOL)
    assert key["random_gap_max"] <= worst * (1 + SAME_COMPUTATION_RTOL)
    assert abs(key["orthogonal_gap"]) <= ROUNDING_ATOL * (1 + worst)
    source_cov = model.source.cov
    shrink = (
        -(math.sin(psi) ** 2) * delta / np.linalg.norm(source_cov, "fro") * head @ source_cov @ head
    )
    assert shrink < 0
    np.testing.assert_allclose(key["shrink_gap"], shrink, rtol=SAME_COMPUTATION_RTOL)


FLOAT32_EPS = float(np.finfo(np.float32).eps)


def check_why_reweighting_cannot_help(key: dict) -> None:
    """Notebook 2: S3 heads against float64 least squares, S4 profile risk and slope, drift, gaps."""
    betas, noise = np.asarray(key["betas"]), np.asarray(key["noise_stds"])

    def scalar_model(v: float) -> scm.LinearGaussianSCM:
        return scm.LinearGaussianSCM(
            sigma_s=np.eye(1),
            source=scm.ResidualLaw(np.zeros(1), np.array([[v]])),
            target=scm.ResidualLaw(np.zeros(1), np.array([[v]])),
            beta=betas[:, None],
            noise_std=noise,
        )

    drawn = scm.sample(scalar_model(key["v_heads"]), key["samples"], "source", key["seed"])
    z_hat_s, _ = scm.encode(scalar_model(key["v_heads"]), key["psi_fixed"], drawn.x)
    design = np.concatenate([z_hat_s, np.ones_like(z_hat_s)], axis=1)
    solution = np.linalg.lstsq(design, drawn.y, rcond=None)[0]
    least_squares = np.concatenate([solution[:1].T, solution[1:].T], axis=1)
    rounding = 64 * FLOAT32_EPS * (1 + np.abs(least_squares).max())
    tolerance = study4.CONFIGS["fast"].head_tolerance
    trained = {}
    for name, heads in key["heads"].items():
        trained[name] = np.stack([heads["weights"], heads["bias"]], axis=1)
        distance = np.linalg.norm(trained[name] - least_squares, axis=1)
        assert max(heads["radius"]) <= tolerance, f"{name} heads did not converge"
        assert np.all(distance <= tolerance + rounding), name
    stacked = np.stack(list(trained.values()))
    assert np.ptp(stacked, axis=0).max() <= 2 * tolerance + 2 * rounding

    low, high, points = key["profile_grid"]
    grid = np.linspace(low, high, points)
    c, s = np.cos(grid), np.sin(grid)
    beta, psi_start = key["beta"], key["psi_start"]
    t_start = math.tan(psi_start)
    for label, profile in key["profiles"].items():
        v = float(label)
        formula = beta**2 * v * s**2 / (c**2 + v * s**2) + noise[0] ** 2
        np.testing.assert_allclose(profile, formula, rtol=SAME_COMPUTATION_RTOL, atol=ROUNDING_ATOL)
        slope = 2 * beta**2 * v * s * c / (c**2 + v * s**2) ** 2
        from_start = np.abs(slope[grid <= psi_start]).max()
        np.testing.assert_allclose(
            key["max_slope_from_start"][label], from_start, rtol=SAME_COMPUTATION_RTOL
        )
        assert from_start <= 2 * beta**2 * v * t_start * (1 + t_start**2) + ROUNDING_ATOL
        if v > 0:
            asymptote = 3 * math.sqrt(3) / 8 * beta**2 / math.sqrt(v)
            assert asymptote * (1 - 1e-9) <= key["max_slope"][label] <= asymptote * (1 + v)
        else:
            assert np.ptp(profile) <= ROUNDING_ATOL and key["max_slope"][label] == 0.0

    steps, lr = key["profile"]["steps"], key["profile"]["lr"]
    for label, result in key["drift"].items():
        allowance = steps * lr * result["max_weight_sum"] * math.sqrt(key["samples"]) * FLOAT32_EPS
        assert result["drift"] <= result["bound"] + allowance, label

    for label, result in key["joint"].items():
        assert 0.0 <= result["final_psi"] <= math.pi / 2, label
        assert result["gap"] >= -ROUNDING_ATOL, label


def folded_normal_mean(mean: float, std: float) -> float:
    """``E|N(mean, std^2)|``."""
    if std == 0.0:
        return abs(mean)
    return std * math.sqrt(2 / math.pi) * math.exp(-(mean**2) / (2 * std**2)) + mean * math.erf(
        mean / (std * math.sqrt(2))
    )


def absolute_loss_risk(model, psi: float, head: np.ndarray, bias: float, env: str) -> float:
    """Mean absolute error of a head: the residual ``Y - w^T Zhat_s - b`` is Gaussian with mean
    ``-(s w^T mu_e + b)`` and variance ``d^T Sigma_joint d + sigma^2``, ``d = [beta - c w; -s w]``."""
    c, s = math.cos(psi), math.sin(psi)
    direction = np.concatenate([model.beta[0] - c * head, -s * head])
    variance = direction @ model.joint_covariance(env) @ direction + model.noise_std[0] ** 2
    return folded_normal_mean(-(s * head @ model.law(env).mean + bias), math.sqrt(variance))


def check_leakage_and_wasserstein(key: dict) -> None:
    """Notebook 3: lambda_leak = |sin psi|, W_1 between residual laws, the S5 bounds, rho != 0."""
    model = scm.random_scm(**key["model_args"])
    sines = np.abs(np.sin(key["angles"]))
    np.testing.assert_allclose(key["leakage_probe"], sines, atol=ROUNDING_ATOL)
    np.testing.assert_allclose(key["leakage_linear"], sines, atol=ROUNDING_ATOL)

    head = scm.optimal_heads(model, 0.5)[0][0]
    unit = head / np.linalg.norm(head)
    means = [unit @ law.mean for law in (model.source, model.target)]
    stds = [math.sqrt(unit @ law.cov @ unit) for law in (model.source, model.target)]
    w1_projection = folded_normal_mean(means[0] - means[1], abs(stds[0] - stds[1]))
    np.testing.assert_allclose(key["w1_quantile"], w1_projection, atol=QUADRATURE_ATOL)
    w2 = scm.gaussian_w2(model.source, model.target)
    np.testing.assert_allclose(key["w2_gaussian"], w2, rtol=SAME_COMPUTATION_RTOL)
    pot = key["pot"]
    largest = -1
    assert pot["mean"][largest] + Z_BOUND * pot["se"][largest] >= w1_projection
    upper = w2 + pot["same_source"][largest] + pot["same_target"][largest]
    assert pot["mean"][largest] - Z_BOUND * pot["se"][largest] <= upper

    for row in key["rows"]:
        psi = row["psi"]
        weights, bias = scm.optimal_heads(model, psi)
        w, b = weights[0], float(bias[0])
        gap = absolute_loss_risk(model, psi, w, b, "target") - absolute_loss_risk(
            model, psi, w, b, "source"
        )
        np.testing.assert_allclose(row["gap_exact"], gap, atol=QUADRATURE_ATOL)
        assert_within_standard_errors(row["gap_mc"], gap, row["gap_mc_se"], f"psi={psi}")
        assert abs(gap) <= row["bound_projected"] + QUADRATURE_ATOL
        full = np.linalg.norm(w) * abs(math.sin(psi)) * w2
        np.testing.assert_allclose(row["bound_full"], full, rtol=SAME_COMPUTATION_RTOL, atol=1e-15)
        assert row["bound_projected"] <= full + QUADRATURE_ATOL
        squared = scm.ood_gap(model, psi, weights, bias)[0]
        np.testing.assert_allclose(
            row["squared_gap"], squared, rtol=SAME_COMPUTATION_RTOL, atol=1e-15
        )
        assert abs(squared) <= row["squared_bound"] + ROUNDING_ATOL

    from experiments.synthetic import models

    trained = key["trained"]
    zoo = replace(models.ZooConfig(), shifts=tuple(trained["shifts"]), w1_samples=400)
    records = {record["method"]: record for record in trained["records"]}
    for row in trained["rows"]:
        record = records[row["method"]]
        w1 = models.residual_w1(zoo, row["seed"], row["variant"], row["shift"])
        np.testing.assert_allclose(record["w1"][str(row["shift"])], w1, rtol=SAME_COMPUTATION_RTOL)
        bound = record["head_norms"][row["task"]] * record["lambda_leak"] * w1
        np.testing.assert_allclose(row["bound"], bound, rtol=SAME_COMPUTATION_RTOL)
        assert row["gap"] <= row["c_cap"] + row["bound"], row

    correlated = key["correlated"]
    model = scm.random_scm(**correlated["args"])
    psi = correlated["psi"]
    weights, bias = scm.optimal_heads(model, psi)
    w, b = weights[0], float(bias[0])
    gap = absolute_loss_risk(model, psi, w, b, "target") - absolute_loss_risk(
        model, psi, w, b, "source"
    )
    np.testing.assert_allclose(correlated["gap"], gap, atol=QUADRATURE_ATOL)
    assert correlated["w1"] == 0.0
    assert abs(gap) > QUADRATURE_ATOL


def scalar_cka_formula(v: float, psi: float) -> float:
    c, s = math.cos(psi), math.sin(psi)
    return c * c * s * s * (v - 1) ** 2 / ((c * c + s * s * v) * (s * s + c * c * v))


def check_what_cka_sees(key: dict) -> None:
    """Notebook 4: S6 closed form and blindness, S8 estimator bias, S7 alignment bound."""
    check = key["check"]
    population = scalar_cka_formula(check["v"], check["psi"])
    np.testing.assert_allclose(check["population"], population, rtol=SAME_COMPUTATION_RTOL)
    assert_within_standard_errors(
        check["estimated"], population, check["estimated_se"], "minibatch CKA"
    )

    grid = np.linspace(0.0, math.pi / 2, key["grid_points"])
    base = scm.random_scm(**key["base_args"])
    generic = max(scm.population_cka(base, psi) for psi in grid)
    np.testing.assert_allclose(key["generic_max_cka"], generic, rtol=SAME_COMPUTATION_RTOL)
    assert generic > 0
    assert key["blind_max_abs_cka"] <= ROUNDING_ATOL

    estimator = key["estimator"]
    p, q = estimator["p"], estimator["q"]
    for index, n in enumerate(estimator["batch_sizes"]):
        expected = expected_biased_cka_independent(n, p, q)
        approximation = expected * biased_cka_approximation_error(n, p, q)
        observed = estimator["biased_mean"][index]
        assert abs(observed - expected) <= approximation + Z_BOUND * estimator["biased_se"][index]
        assert_within_standard_errors(
            estimator["debiased_mean"][index], 0.0, estimator["debiased_se"][index], f"n={n}"
        )
    assert estimator["biased_mean"][estimator["batch_sizes"].index(16)] > 0.9

    alignment = key["alignment"]
    d, k = alignment["d"], alignment["k"]
    basis = scm.haar_orthogonal(d, np.random.default_rng(alignment["seed"]))
    semantic = np.linspace(1.0, 2.0, k)[:, None] * basis[:k]
    for index, a in enumerate(alignment["mix_levels"]):
        residual = a * semantic + (1 - a) * basis[k : 2 * k]
        cross = np.linalg.norm(semantic @ residual.T, "fro") ** 2
        rho_squared = cross / (np.sum(semantic**2) * np.sum(residual**2))
        cka = cross / (
            np.linalg.norm(semantic @ semantic.T, "fro")
            * np.linalg.norm(residual @ residual.T, "fro")
        )
        assert rho_squared <= cka + ROUNDING_ATOL
        np.testing.assert_allclose(
            [alignment["exact"][index], alignment["cka_population"][index]],
            [rho_squared, cka],
            rtol=SAME_COMPUTATION_RTOL,
            atol=ROUNDING_ATOL,
        )
        assert_within_standard_errors(
            alignment["sampled"][index], rho_squared, alignment["sampled_se"][index], f"a={a}"
        )
        assert_within_standard_errors(
            alignment["cka_measured"][index], cka, alignment["cka_measured_se"][index], f"a={a}"
        )


def check_core_mtl_against_pcgrad(key: dict) -> None:
    """Notebook 5: shift sizes, zero gap without shift, two independent estimates of one gap."""
    from experiments.synthetic import models

    config = replace(models.ZooConfig(), shifts=tuple(key["config"]["shifts"]))
    tracked = str(key["tracked_shift"])
    for label, method in key["methods"].items():
        for shift_label, row in method["shifts"].items():
            model = models.study_scm(config, key["seed"], "linear", float(shift_label))
            np.testing.assert_allclose(
                row["frobenius"], model.residual_shift_frobenius(), rtol=SAME_COMPUTATION_RTOL
            )
        no_shift = method["shifts"]["0.0"]
        assert_within_standard_errors(no_shift["gap"], 0.0, no_shift["gap_se"], f"{label} shift 0")
        validation, final = method["final_validation"], method["shifts"][tracked]
        combined = math.hypot(validation["val/gap_se"], final["gap_se"])
        assert_within_standard_errors(validation["val/gap"], final["gap"], combined, label)
        assert all(0.0 <= value <= 1.0 + ROUNDING_ATOL for value in method["cos2"]), label
        assert 0.0 <= method["sin2_psi"] <= 1.0 and method["lambda_leak"] >= 0.0


def notebook_six_backbone(seed: int):
    """The small CNN of notebook 6, initialised from ``seed`` (the notebook records a checksum of
    its weights, which guards this copy of its definition)."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU()),
        nn.Sequential(nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU()),
    )


def check_your_own_data(key: dict) -> None:
    """Notebook 6: the generated splits and their shortcut, the backbone, EW retrained through the
    public API to the same metrics, and every method above chance on the source tasks."""
    import torch

    import coremtl
    from coremtl.toy_images import coloured_squares

    seed, sizes = key["seed"], key["sizes"]
    splits = {
        "train": coloured_squares(sizes["train"], seed=seed, shortcut=key["shortcut"]),
        "val": coloured_squares(sizes["val"], seed=seed + 1, shortcut=key["shortcut"]),
        "target": coloured_squares(sizes["target"], seed=seed + 2, shortcut=0.0),
    }
    for name in ("train", "target"):
        split = splits[name]
        agreement = float(((split["colour"] >= 2).long() == split["hollow"]).float().mean())
        assert key["agreement"][name] == agreement, name
    backbone = notebook_six_backbone(seed)
    checksum = sum(float(p.detach().double().sum()) for p in backbone.parameters())
    np.testing.assert_allclose(key["backbone_checksum"], checksum, rtol=SAME_COMPUTATION_RTOL)

    names = ("count", "large", "hollow")
    tasks = [coremtl.Task(name, "classification", outputs=2) for name in names]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ew = coremtl.train(
            "ew",
            backbone,
            tasks,
            splits["train"],
            val_data=splits["val"],
            test_data=splits["target"],
            seed=seed,
            **key["settings"],
        )
    finally:
        torch.set_num_threads(threads)
    for split, metrics in (("val", ew.val), ("test", ew.test)):
        recorded = key["metrics"]["ew"][split]
        assert set(recorded) == set(metrics)
        for name, value in metrics.items():
            np.testing.assert_allclose(recorded[name], value, rtol=SAME_COMPUTATION_RTOL)

    chance_margin = 0.5 + Z_BOUND * math.sqrt(0.25 / sizes["val"])
    for method, metrics in key["metrics"].items():
        assert metrics["val"]["large/accuracy"] > chance_margin, method
        values = [*metrics["val"].values(), *metrics["test"].values()]
        assert all(0.0 <= value <= 1.0 for value in values), method
    assert all(0.0 <= value <= 1.0 for value in key["colour_probe"].values())


KEY_NUMBER_CHECKS = {
    "01_scm_and_mixing_angle": check_scm_and_mixing_angle,
    "02_why_reweighting_cannot_help": check_why_reweighting_cannot_help,
    "03_leakage_and_wasserstein": check_leakage_and_wasserstein,
    "04_what_cka_sees": check_what_cka_sees,
    "05_core_mtl_against_pcgrad": check_core_mtl_against_pcgrad,
    "06_your_own_data": check_your_own_data,
}


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_and_its_key_numbers_match_the_public_api(name, kernel_spec_dir, tmp_path):
    """Its key numbers match; a notebook that leaves files in its folder (notebook 5's runs) is
    executed a second time in place, as a reader re-running it does, and gives the same numbers.
    One that leaves nothing starts its second execution from the same folder as its first (every
    notebook is re-run in place by the slow test below)."""
    key = execute(name, kernel_spec_dir, tmp_path)
    KEY_NUMBER_CHECKS[name](key)
    if any(tmp_path.iterdir()):
        assert execute(name, kernel_spec_dir, tmp_path) == key


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_notebook_runs_twice_in_the_same_folder(name, kernel_spec_dir, tmp_path):
    first = execute(name, kernel_spec_dir, tmp_path)
    assert execute(name, kernel_spec_dir, tmp_path) == first
