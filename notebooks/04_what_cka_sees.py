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
# # 4. What CKA sees
#
# CORE-MTL penalises the linear centred kernel alignment (CKA) between the semantic stream
# $\hat Z_s$ and the residual stream $\hat Z_r$. For two random vectors,
# $$\mathrm{CKA}(\hat Z_s, \hat Z_r) = \frac{\|C_{sr}\|_F^2}{\|C_{ss}\|_F\,\|C_{rr}\|_F},$$
# with $C$ the blocks of their joint covariance. This notebook shows
#
# 1. the closed form of CKA as a function of the mixing angle $\psi$ (statement **S6**),
# 2. that it is **blind** when the residual covariance equals the semantic one,
# 3. that the textbook (biased) minibatch estimator is nearly 1 for independent features at
#    small batch, while the debiased one is centred at 0 (**S8**),
# 4. why a small CKA makes task and residual gradients orthogonal (**S7**).

# %%
import json
import math

import matplotlib.pyplot as plt
import numpy as np
import torch

import scm
from coremtl.cka import (
    biased_cka_approximation_error,
    expected_biased_cka_independent,
    linear_cka,
)
from proofs import s7_gradient_alignment as alignment_proof

torch.manual_seed(0)

# %% [markdown]
# ## S6: CKA as a function of the angle
#
# In the scalar SCM ($\Sigma_s = 1$, $\Sigma_S = v$, zero means) the streams
# $\hat Z_s = cZ_s + sZ_r$ and $\hat Z_r = -sZ_s + cZ_r$ have
# $\operatorname{Var}\hat Z_s = c^2 + s^2 v$, $\operatorname{Var}\hat Z_r = s^2 + c^2 v$ and
# $\operatorname{Cov}(\hat Z_s, \hat Z_r) = cs\,(v - 1)$, so
# $$\mathrm{CKA}(\psi) = \frac{c^2 s^2 (v-1)^2}{(c^2 + s^2 v)(s^2 + c^2 v)} .$$
# It is zero at $\psi = 0$, which is what the penalty wants; but for $v = 1$ it is zero at
# **every** angle.

# %%
VARIANCES = [0.25, 0.5, 1.0, 2.0, 4.0]
grid = np.linspace(0.0, math.pi / 2, 91)
fig, axis = plt.subplots(figsize=(6.5, 4))
for v in VARIANCES:
    curve = [scm.population_cka(scm.scalar_scm(v), psi) for psi in grid]
    axis.plot(grid, curve, label=f"v = {v}", linewidth=3 if v == 1.0 else 1.5)
axis.set_xlabel("mixing angle psi")
axis.set_ylabel("population CKA(Zhat_s, Zhat_r)")
axis.set_title("CKA sees the mixing only when v != 1")
axis.legend()
plt.show()

# %% [markdown]
# The minibatch estimate converges to the closed form. Twenty independent batches of 1000 source
# samples at $v = 4$, $\psi = \pi/6$, with the debiased estimator:

# %%
V_CHECK, PSI_CHECK, BATCH_CHECK, NUM_BATCHES = 4.0, math.pi / 6, 1000, 20
scalar = scm.scalar_scm(V_CHECK)
population = scm.population_cka(scalar, PSI_CHECK)
estimates = []
for batch in range(NUM_BATCHES):
    drawn = scm.sample(scalar, BATCH_CHECK, "source", seed=batch)
    z_hat_s, z_hat_r = scm.encode(scalar, PSI_CHECK, drawn.x)
    estimates.append(float(linear_cka(torch.as_tensor(z_hat_s), torch.as_tensor(z_hat_r))))
estimated = float(np.mean(estimates))
estimated_se = float(np.std(estimates, ddof=1) / math.sqrt(NUM_BATCHES))
print(f"population CKA {population:.4f}; minibatch mean {estimated:.4f} +- {estimated_se:.4f}")

# %% [markdown]
# ## Blindness in any dimension
#
# For $k$ factors and no source correlation, $C_{sr} = cs\,(\Sigma_S - \Sigma_s)$: the CKA is
# zero for every angle exactly when $\Sigma_S = \Sigma_s$. A rotation of a Gaussian whose two
# blocks have the same covariance leaves the joint law unchanged, so **no** second-order
# independence measure can tell $\psi$ apart there. Something else has to anchor the angle:
# below, the source risk of the best heads, which still prefers $\psi = 0$ because the residual
# is noise for the tasks.

# %%
BASE_ARGS = {"k": 3, "num_tasks": 2, "seed": 5}
base = scm.random_scm(**BASE_ARGS)
blind = scm.LinearGaussianSCM(
    sigma_s=base.sigma_s,
    source=scm.ResidualLaw(np.zeros(base.k), base.sigma_s),
    target=base.target,
    beta=base.beta,
    noise_std=base.noise_std,
)
cka_generic = np.array([scm.population_cka(base, psi) for psi in grid])
cka_blind = np.array([scm.population_cka(blind, psi) for psi in grid])
profile_risk_blind = np.array(
    [scm.risks(blind, psi, *scm.optimal_heads(blind, psi)).sum() for psi in grid]
)
fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.8))
left.plot(grid, cka_generic, label="Sigma_S != Sigma_s")
left.plot(grid, cka_blind, label="Sigma_S = Sigma_s", linewidth=3)
left.set_xlabel("psi")
left.set_ylabel("population CKA")
left.legend()
right.plot(grid, profile_risk_blind, color="C2")
right.set_xlabel("psi")
right.set_ylabel("summed source risk of the best heads")
right.set_title("the task loss still anchors psi when Sigma_S = Sigma_s")
plt.show()
print(f"max CKA over psi: generic {cka_generic.max():.4f}, blind {np.abs(cka_blind).max():.2e}")

# %% [markdown]
# ## S8: the estimator matters
#
# The biased estimator replaces HSIC by $\|X_c^\top Y_c\|_F^2/(n-1)^2$. For independent
# isotropic features of widths $p, q$ at batch $n$ (with $m = n - 1$) its mean is about
# $$\mathbb E[\mathrm{CKA}_b] \approx \sqrt{\frac{pq}{(m+p+1)(m+q+1)}},$$
# which tends to 1 when the features are much wider than the batch: at $n = 16$,
# $p = 512$, $q = 256$ the penalty would read 0.95 for two streams that share nothing.
# The debiased estimator (Song et al. 2012, unbiased HSIC) is centred at zero.

# %%
P, Q = 512, 256
BATCH_SIZES = [8, 16, 32, 64, 128, 256]
TRIALS = 48
biased_mean, biased_se, debiased_mean, debiased_se = [], [], [], []
for n in BATCH_SIZES:
    biased, debiased = [], []
    for _ in range(TRIALS):
        x, y = torch.randn(n, P), torch.randn(n, Q)
        biased.append(float(linear_cka(x, y, debiased=False)))
        debiased.append(float(linear_cka(x, y, debiased=True)))
    biased_mean.append(np.mean(biased))
    biased_se.append(np.std(biased, ddof=1) / math.sqrt(TRIALS))
    debiased_mean.append(np.mean(debiased))
    debiased_se.append(np.std(debiased, ddof=1) / math.sqrt(TRIALS))
predicted = [expected_biased_cka_independent(n, P, Q) for n in BATCH_SIZES]
relative_error = [biased_cka_approximation_error(n, P, Q) for n in BATCH_SIZES]
for row in zip(
    BATCH_SIZES, biased_mean, predicted, relative_error, debiased_mean, debiased_se, strict=True
):
    print(
        "n = {:4d}: biased {:.4f} (predicted {:.4f}, approximation error ~{:.1e} relative), "
        "debiased {:+.4f} +- {:.4f}".format(*row)
    )

fig, axis = plt.subplots(figsize=(6.5, 4))
axis.errorbar(BATCH_SIZES, biased_mean, yerr=np.multiply(2, biased_se), fmt="o", label="biased")
axis.plot(BATCH_SIZES, predicted, "--", label="sqrt(pq / ((m+p+1)(m+q+1)))")
axis.errorbar(
    BATCH_SIZES, debiased_mean, yerr=np.multiply(2, debiased_se), fmt="s", label="debiased"
)
axis.axhline(0.0, color="0.5", linewidth=0.8)
axis.set_xscale("log", base=2)
axis.set_xlabel("batch size n")
axis.set_ylabel("CKA of independent features")
axis.set_title(f"independent Gaussian features, p = {P}, q = {Q}")
axis.legend()
plt.show()

# %% [markdown]
# ## S7: small CKA means orthogonal gradients
#
# Let the last shared features $F \in \mathbb R^d$ be whitened and the streams be linear
# read-outs $\hat Z_s = P_s F$, $\hat Z_r = P_r F$. With independent isotropic back-propagated
# signals $\delta_s, \delta_r$, the gradients at $F$ are $g_{task} = P_s^\top\delta_s$ and
# $g_{res} = P_r^\top\delta_r$, and their alignment is
# $$\rho^2 = \frac{\mathbb E\langle g_{task}, g_{res}\rangle^2}{\mathbb E\|g_{task}\|^2\,\mathbb E\|g_{res}\|^2}
#   = \frac{\|P_s P_r^\top\|_F^2}{\|P_s\|_F^2\,\|P_r\|_F^2}
#   \le \frac{\|P_s P_r^\top\|_F^2}{\|P_s P_s^\top\|_F\,\|P_r P_r^\top\|_F} = \mathrm{CKA},$$
# because $\|PP^\top\|_F \le \|P\|_F^2$. Below, the residual read-out turns from a copy of the
# semantic one ($a = 1$) to a direction orthogonal to it ($a = 0$). The exact values come from
# `proofs.s7_gradient_alignment`; the alignment is also measured by sampling
# $\delta_s, \delta_r$, and the CKA by sampling $F$, each over 10 batches.

# %%
D, K, MIX_SEED = 12, 4, 11
basis = scm.haar_orthogonal(D, np.random.default_rng(MIX_SEED))
scales = np.linspace(1.0, 2.0, K)
semantic_readout = scales[:, None] * basis[:K]
orthogonal_readout = basis[K : 2 * K]
MIX_LEVELS = np.linspace(0.0, 1.0, 6)
ALIGN_BATCH, ALIGN_BATCHES = 2000, 10


def batch_mean_and_se(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values, ddof=1) / math.sqrt(len(values)))


alignment_exact, alignment_mc, alignment_se = [], [], []
cka_population, cka_measured, cka_measured_se = [], [], []
for a in MIX_LEVELS:
    residual_readout = a * semantic_readout + (1 - a) * orthogonal_readout
    p_s = torch.as_tensor(semantic_readout)
    p_r = torch.as_tensor(residual_readout)
    alignment_exact.append(alignment_proof.alignment(semantic_readout, residual_readout))
    cka_population.append(alignment_proof.stream_cka(semantic_readout, residual_readout))
    ratios, ckas = [], []
    for _ in range(ALIGN_BATCHES):
        g_task = torch.randn(ALIGN_BATCH, K, dtype=torch.float64) @ p_s
        g_res = torch.randn(ALIGN_BATCH, K, dtype=torch.float64) @ p_r
        numerator = ((g_task * g_res).sum(dim=1) ** 2).mean()
        ratios.append(
            float(numerator / (g_task.square().sum(1).mean() * g_res.square().sum(1).mean()))
        )
        features = torch.randn(ALIGN_BATCH, D, dtype=torch.float64)
        ckas.append(float(linear_cka(features @ p_s.T, features @ p_r.T)))
    ratio_mean, ratio_se = batch_mean_and_se(ratios)
    cka_mean, cka_se = batch_mean_and_se(ckas)
    alignment_mc.append(ratio_mean)
    alignment_se.append(ratio_se)
    cka_measured.append(cka_mean)
    cka_measured_se.append(cka_se)
    print(
        f"a = {a:.1f}: rho^2 exact {alignment_exact[-1]:.4f}, "
        f"sampled {ratio_mean:.4f} +- {ratio_se:.4f}; "
        f"CKA population {cka_population[-1]:.4f}, measured {cka_mean:.4f} +- {cka_se:.4f}"
    )

fig, axis = plt.subplots(figsize=(5, 4.5))
axis.plot([0, 1], [0, 1], color="0.6", linestyle="--", label="rho^2 = CKA")
axis.errorbar(
    cka_measured, alignment_mc, yerr=np.multiply(2, alignment_se), fmt="o", label="sampled"
)
axis.plot(cka_population, alignment_exact, "x", color="C3", label="exact")
axis.set_xlabel("CKA(Zhat_s, Zhat_r)")
axis.set_ylabel("gradient alignment rho^2")
axis.set_title("S7: rho^2 <= CKA")
axis.legend()
plt.show()

# %% [markdown]
# The key numbers, checked by `tests/test_notebooks.py`:

# %%
KEY_NUMBERS = {
    "variances": VARIANCES,
    "check": {
        "v": V_CHECK,
        "psi": PSI_CHECK,
        "population": population,
        "estimated": estimated,
        "estimated_se": estimated_se,
    },
    "grid_points": len(grid),
    "base_args": BASE_ARGS,
    "blind_max_abs_cka": float(np.abs(cka_blind).max()),
    "generic_max_cka": float(cka_generic.max()),
    "estimator": {
        "p": P,
        "q": Q,
        "batch_sizes": BATCH_SIZES,
        "biased_mean": biased_mean,
        "biased_se": biased_se,
        "debiased_mean": debiased_mean,
        "debiased_se": debiased_se,
    },
    "alignment": {
        "d": D,
        "k": K,
        "seed": MIX_SEED,
        "mix_levels": MIX_LEVELS.tolist(),
        "exact": alignment_exact,
        "sampled": alignment_mc,
        "sampled_se": alignment_se,
        "cka_population": cka_population,
        "cka_measured": cka_measured,
        "cka_measured_se": cka_measured_se,
    },
}
print("KEY_NUMBERS " + json.dumps(KEY_NUMBERS, default=float))
