# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 3. Leakage and Wasserstein
#
# Notebook 1 bounded the OOD gap by the *size* of the covariance shift. Statement **S5** (the
# paper's claim C2) bounds it instead by two numbers with a clear meaning:
#
# * the **leakage coefficient** $\lambda_{leak}$: how fast the semantic stream moves when only
#   the residual factors move, the Lipschitz constant of $\hat Z_s$ in $z_r$;
# * the **Wasserstein distance** $W_1(P_S(Z_r), P_T(Z_r))$ between the residual laws of the two
#   environments: how far the residual factors move.
#
# For a loss $\ell(y, \hat y)$ that is $L$-Lipschitz in $\hat y$ (absolute error, Huber) and a
# linear head $w$,
# $$|R_T - R_S| \;\le\; L\,|s|\,W_1\big(P_S(w^\top Z_r), P_T(w^\top Z_r)\big)
#   \;\le\; L\,\|w\|\,\lambda_{leak}\,W_1\big(P_S(Z_r), P_T(Z_r)\big).$$
# Proof idea: couple the environments through $Z_r$ alone (Kantorovich-Rubinstein). This needs
# $Z_r$ independent of $(Z_s, \varepsilon)$ in both environments; the last section shows what
# happens without it.

# %%
import json
import math
from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np
import ot
import torch
from scipy.stats import wasserstein_distance

import scm
from coremtl.probes import leakage_coefficient as probe_leakage
from experiments.synthetic import models
from experiments.synthetic import study2_bound as bound_study
from experiments.synthetic.angle_model import angle_model
from proofs import s5_lipschitz_bound as s5

MODEL_ARGS = {
    "k": 3,
    "num_tasks": 1,
    "seed": 4,
    "shift_size": 1.5,
    "mean_shift": 0.8,
    "mixing": "haar",
}
model = scm.random_scm(**MODEL_ARGS)
ANGLES = [0.0, 0.1, 0.25, 0.5, 0.8, 1.2]
print("residual mean source / target:", model.source.mean.round(3), model.target.mean.round(3))
print("||Sigma_T - Sigma_S||_F =", round(model.residual_shift_frobenius(), 3))

# %% [markdown]
# ## The leakage coefficient
#
# For the encoder of setting S, $\hat Z_s = c\,Z_s + s\,Z_r$, so $\partial\hat Z_s/\partial z_r = sI$
# and $\lambda_{leak} = |\sin\psi|$. For any encoder, `coremtl.probes.leakage_coefficient`
# measures it through the known generator $x = G[z_s; z_r]$: the largest operator norm of the
# Jacobian $\partial\hat Z_s/\partial z_r$ over sample points. Here it is applied to the
# setting-S encoder written as a torch model (with a random orthogonal mixing $G$).

# %%
latent_sample = scm.sample(model, 64, "source", seed=0)
latents = torch.as_tensor(np.concatenate([latent_sample.z_s, latent_sample.z_r], axis=1))
leakage_probe, leakage_linear = [], []
for psi in ANGLES:
    network = angle_model(model, psi, ["task"])
    leakage_probe.append(probe_leakage(network, model, latents))
    leakage_linear.append(scm.linear_encoder_leakage(model, scm.encoder_matrix(model, psi)))
    print(
        f"psi = {psi:.2f}: probe {leakage_probe[-1]:.6f}, linear encoder {leakage_linear[-1]:.6f}, "
        f"|sin psi| = {abs(math.sin(psi)):.6f}"
    )

# %% [markdown]
# ## The Wasserstein distance between residual laws
#
# In one dimension the optimal coupling matches quantiles:
# $W_1 = \int_0^1 |F_S^{-1}(u) - F_T^{-1}(u)|\,du$, and for two Gaussians it is the mean of a
# folded normal, $\mathbb E|\Delta m + \Delta\sigma\,\xi|$. In $k$ dimensions we solve the exact
# optimal-transport problem between two samples with POT (`ot.emd2`). That estimate is biased
# upwards (two samples of the same law are not at distance 0) and shrinks slowly with $n$; the
# Gaussian $W_2$ closed form is an upper bound and any 1-D projection a lower bound.

# %%
head_direction = scm.optimal_heads(model, 0.5)[0][0]
unit = head_direction / np.linalg.norm(head_direction)
projected_laws = [
    (float(unit @ law.mean), math.sqrt(unit @ law.cov @ unit))
    for law in (model.source, model.target)
]
w1_quantile = s5.quantile_w1(*projected_laws[0], *projected_laws[1])
w1_folded = s5.gaussian_absolute_mean(
    projected_laws[0][0] - projected_laws[1][0], abs(projected_laws[0][1] - projected_laws[1][1])
)
projected_source = scm.sample(model, 20_000, "source", seed=1).z_r @ unit
projected_target = scm.sample(model, 20_000, "target", seed=2).z_r @ unit
w1_scipy = wasserstein_distance(projected_source, projected_target)
print(
    f"1-D (projection on the head direction): quantile integral {w1_quantile:.5f}, "
    f"folded normal {w1_folded:.5f}, scipy on 20000 samples {w1_scipy:.5f}"
)

SAMPLE_SIZES = [100, 200, 400, 800]
POT_REPEATS = 4
w2_gaussian = scm.gaussian_w2(model.source, model.target)
pot_mean, pot_se, same_source, same_target = [], [], [], []
for n in SAMPLE_SIZES:
    between, source_only, target_only = [], [], []
    for repeat in range(POT_REPEATS):
        draws = [
            scm.sample(model, n, env, seed=100 * repeat + i).z_r
            for i, env in enumerate(("source", "target", "source", "target"))
        ]
        uniform = np.full(n, 1.0 / n)
        between.append(ot.emd2(uniform, uniform, ot.dist(draws[0], draws[1], metric="euclidean")))
        source_only.append(
            ot.emd2(uniform, uniform, ot.dist(draws[0], draws[2], metric="euclidean"))
        )
        target_only.append(
            ot.emd2(uniform, uniform, ot.dist(draws[1], draws[3], metric="euclidean"))
        )
    pot_mean.append(float(np.mean(between)))
    pot_se.append(float(np.std(between, ddof=1) / math.sqrt(POT_REPEATS)))
    same_source.append(float(np.mean(source_only)))
    same_target.append(float(np.mean(target_only)))
    print(
        f"n = {n:4d}: POT W1 {pot_mean[-1]:.4f} +- {pot_se[-1]:.4f} "
        f"(two samples of one law: source {same_source[-1]:.4f}, target {same_target[-1]:.4f})"
    )
print(f"lower bound (projection) {w1_quantile:.4f} <= W1 <= Gaussian W2 {w2_gaussian:.4f}")

fig, axis = plt.subplots(figsize=(6.5, 3.8))
axis.errorbar(SAMPLE_SIZES, pot_mean, yerr=np.multiply(2, pot_se), fmt="o-", label="POT W1, S vs T")
axis.plot(SAMPLE_SIZES, same_source, "s--", label="POT W1, S vs S (the sample bias)")
axis.axhline(w2_gaussian, color="C3", label="Gaussian W2 (upper bound)")
axis.axhline(w1_quantile, color="C2", label="W1 of a 1-D projection (lower bound)")
axis.set_xscale("log")
axis.set_xlabel("sample size n per environment")
axis.set_ylabel("distance")
axis.set_title(f"W1 between residual laws, k = {model.k}")
axis.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## The bound against the gap
#
# Take the source-optimal head at several angles and measure the absolute-error gap ($L = 1$)
# exactly (the residual $Y - \hat y$ is Gaussian, so its mean absolute value is a folded normal)
# and by Monte Carlo. Compare with the projected bound $|s|\,W_1(w^\top Z_r)$ (exact) and the
# full bound $\|w\|\,\lambda_{leak}\,W_1(Z_r)$, with $W_1$ replaced by its upper bound, the
# Gaussian $W_2$ (the POT estimate above is biased upwards at these sample sizes, and a bound
# built on it would look looser than it is).
# The squared loss is not Lipschitz; its version uses $W_2$:
# $|R_T - R_S| \le |s|\,W_2(w^\top Z_r)\,(\sqrt{R_S} + \sqrt{R_T})$.

# %%
N_GAP = 40_000
rows = []
for psi, leak in zip(ANGLES, leakage_probe, strict=True):
    weights, bias = scm.optimal_heads(model, psi)
    head, offset = weights[0], float(bias[0])
    laws = [s5.residual_law(model, psi, head, offset, env) for env in ("source", "target")]
    exact = s5.gaussian_absolute_mean(*laws[1]) - s5.gaussian_absolute_mean(*laws[0])
    errors = []
    for env, seed in (("source", 11), ("target", 12)):
        drawn = scm.sample(model, N_GAP, env, seed=seed)
        z_hat_s, _ = scm.encode(model, psi, drawn.x)
        errors.append(np.abs(drawn.y[:, 0] - z_hat_s @ head - offset))
    squared = [float(scm.risks(model, psi, weights, bias, env)[0]) for env in ("source", "target")]
    projected = [
        scm.ResidualLaw(np.array([head @ law.mean]), np.array([[head @ law.cov @ head]]))
        for law in (model.source, model.target)
    ]
    rows.append(
        {
            "psi": psi,
            "gap_exact": exact,
            "gap_mc": float(errors[1].mean() - errors[0].mean()),
            "gap_mc_se": float(math.hypot(*(e.std(ddof=1) / math.sqrt(N_GAP) for e in errors))),
            "bound_projected": abs(math.sin(psi)) * s5.projected_w1(model, head),
            "bound_full": float(np.linalg.norm(head)) * leak * w2_gaussian,
            "squared_gap": squared[1] - squared[0],
            "squared_bound": abs(math.sin(psi))
            * scm.gaussian_w2(*projected)
            * (math.sqrt(squared[0]) + math.sqrt(squared[1])),
        }
    )
print("psi    |gap| exact   MC              bound (projected)  bound (full)  squared gap / bound")
for row in rows:
    print(
        f"{row['psi']:.2f}   {abs(row['gap_exact']):.4f}        "
        f"{row['gap_mc']:+.4f} +- {row['gap_mc_se']:.4f}  {row['bound_projected']:.4f}"
        f"             {row['bound_full']:.4f}        "
        f"{row['squared_gap']:+.4f} / {row['squared_bound']:.4f}"
    )

fig, axis = plt.subplots(figsize=(5.5, 5))
top = max(row["bound_full"] for row in rows) * 1.05
axis.plot([0, top], [0, top], color="0.6", linestyle="--", label="gap = bound")
axis.plot(
    [r["bound_projected"] for r in rows],
    [abs(r["gap_exact"]) for r in rows],
    "o",
    label="absolute loss vs projected bound",
)
axis.plot(
    [r["bound_full"] for r in rows],
    [abs(r["gap_exact"]) for r in rows],
    "s",
    label="absolute loss vs ||w|| lambda_leak W2",
)
axis.plot(
    [r["squared_bound"] for r in rows],
    [abs(r["squared_gap"]) for r in rows],
    "^",
    label="squared loss vs W2 bound",
)
axis.set_xlabel("S5 bound")
axis.set_ylabel("|R_T - R_S|")
axis.set_title("S5: every model lies below the diagonal")
axis.legend(fontsize=8)
plt.show()

# %% [markdown]
# At $\psi = 0$ there is no leakage and no gap, whatever the shift: the gap **decouples** from
# the size of the residual shift as $\lambda_{leak} \to 0$.
#
# ## Trained networks
#
# The same bound for networks trained on source samples: the dual-stream MLP of the synthetic
# studies (`experiments.synthetic.models`), trained with Equal Weighting and with CORE-MTL on an
# SCM with a random orthogonal mixing. With a linear head on the semantic stream the prediction
# is $\|w_t\|\,\lambda_{leak}$-Lipschitz in $z_r$. Here $\lambda_{leak}$ comes from the probe
# (the largest Jacobian norm over sample points, an estimate from below of the supremum), $W_1$
# from POT on samples, and the measured gap carries its estimation error
# $C_{cap} = 2$ standard errors (`experiments.synthetic.study2_bound.bound_rows`).

# %%
zoo = replace(models.ZooConfig(), shifts=(0.0, 1.0, 2.0, 4.0), eval_samples=4000, w1_samples=400)
TRAINED_METHODS = ("ew", "core-mtl")
records = []
for method in TRAINED_METHODS:
    network = models.train(zoo, method, models.study_scm(zoo, 0, "linear", 0.0), 0, "cpu")
    records.append(models.measure(zoo, network, method, "linear", 0, "cpu"))
trained_rows = bound_study.bound_rows(records, bound_study.Config(zoo=zoo))
for record in records:
    print(
        f"{record['method']}: lambda_leak {record['lambda_leak']:.3f}, head norms "
        f"{np.round(record['head_norms'], 3)}"
    )
print("method    shift  task  gap       C_cap    bound    holds")
for row in trained_rows:
    print(
        f"{row['method']:9s} {row['shift']:<6} {row['task']:<5} {row['gap']:+.4f}   "
        f"{row['c_cap']:.4f}   {row['bound']:.4f}   {row['holds']}"
    )

fig, axis = plt.subplots(figsize=(5.5, 5))
for method in TRAINED_METHODS:
    chosen = [row for row in trained_rows if row["method"] == method]
    axis.errorbar(
        [row["bound"] for row in chosen],
        [row["gap"] for row in chosen],
        yerr=[row["c_cap"] for row in chosen],
        fmt="o",
        label=method,
    )
top = max(row["bound"] for row in trained_rows) * 1.05
axis.plot([0, top], [0, top], color="0.6", linestyle="--", label="gap = bound")
axis.set_xlabel("||w_t|| lambda_leak W1")
axis.set_ylabel("absolute-error gap (bars: C_cap)")
axis.set_title("S5 on trained networks, one point per task and shift")
axis.legend()
plt.show()

# %% [markdown]
# ## When the coupling fails: a source-only correlation
#
# If $Z_r$ is correlated with $Z_s$ in the source only (a shortcut, `rho` in the generator), the
# residual *marginals* can be identical while the joint law changes. Then $W_1 = 0$, the bound
# says 0, and the gap is not 0.

# %%
CORRELATED_ARGS = {**MODEL_ARGS, "shift_size": 0.0, "mean_shift": 0.0, "rho": 0.5}
correlated = scm.random_scm(**CORRELATED_ARGS)
PSI_CORRELATED = 0.5
weights, bias = scm.optimal_heads(correlated, PSI_CORRELATED)
laws = [
    s5.residual_law(correlated, PSI_CORRELATED, weights[0], float(bias[0]), env)
    for env in ("source", "target")
]
correlated_gap = s5.gaussian_absolute_mean(*laws[1]) - s5.gaussian_absolute_mean(*laws[0])
correlated_w1 = s5.projected_w1(correlated, weights[0])
print(
    f"rho = 0.5, identical residual marginals: W1 = {correlated_w1:.2e}, gap = {correlated_gap:.4f}"
)

# %% [markdown]
# The key numbers, checked by `tests/test_notebooks.py`:

# %%
KEY_NUMBERS = {
    "model_args": MODEL_ARGS,
    "angles": ANGLES,
    "leakage_probe": leakage_probe,
    "leakage_linear": leakage_linear,
    "w1_quantile": w1_quantile,
    "w1_scipy": w1_scipy,
    "pot": {
        "sizes": SAMPLE_SIZES,
        "mean": pot_mean,
        "se": pot_se,
        "same_source": same_source,
        "same_target": same_target,
    },
    "w2_gaussian": w2_gaussian,
    "rows": rows,
    "trained": {
        "shifts": list(zoo.shifts),
        "records": [
            {
                "method": record["method"],
                "lambda_leak": record["lambda_leak"],
                "head_norms": record["head_norms"].tolist(),
                "w1": {label: row["w1"] for label, row in record["shifts"].items()},
            }
            for record in records
        ],
        "rows": trained_rows,
    },
    "correlated": {
        "args": CORRELATED_ARGS,
        "psi": PSI_CORRELATED,
        "gap": correlated_gap,
        "w1": correlated_w1,
    },
}
print("KEY_NUMBERS " + json.dumps(KEY_NUMBERS))
