"""Exact population quantities of the setting-S angle encoder in torch (model A of the regime map,
:mod:`.model_a`).

Per model (leading axis ``M``): ``Sigma_s = I_k``, ``Sigma_S = v I_k``, source-only correlation
``Cov(E, Z_s) = rho sqrt(v) I_k`` (docs/THEORY.md, setting S, S11) and, in the source only, a
residual that copies the standardised labels, ``Z_r = A Y + E`` with
``A = a I_{k x K} diag(Var Y_t)^{-1/2}`` (S13, :func:`label_loading`; ``a = 0`` elsewhere), labels ``Y = B Z_s + eps`` (``B^T = beta``, ``Var eps_t = sigma^2``); encoder
``R(psi) G^T``, heads ``w_t``, ``b_t`` on ``Zhat_s``. With ``u_t = [beta_t - c w_t; -s w_t]``, the
joint covariance ``Sigma_J`` of ``[Z_s; Z_r]`` and ``n_t = Cov(Z_r, eps_t) = sigma^2 A e_t``
(:func:`source_moments`; zero means):

- task risk (S1): ``R_t = u_t^T Sigma_J u_t + 2 u_{t,r}^T n_t + b_t^2 + sigma^2`` (``u_{t,r}`` the
  ``Z_r`` half of ``u_t``);
- stream CKA (S6): ``||C_sr||_F^2 / (||C_ss||_F ||C_rr||_F)`` of ``C = R(psi) Sigma_J R(psi)^T``;
  the label-conditional one (S13) the same of ``Cov([Z_s; Z_r] | Y)``, the Schur complement of
  the labels' block (:func:`scm.label_correlation.conditional_covariance`);
- input-level counterfactual swap with the exact decoder (study 7): the decoded input is detached
  at the current angle ``phi``; re-encoding at the live ``psi`` gives
  ``u = cos(psi - phi) Zhat_s(i) + sin(psi - phi) Zhat_r(j)`` with ``j`` an independent sample, so
  ``L_cfa = mean_t [a_t^T Sigma_J a_t + a'_t^T Sigma_J a'_t + b_t^2 + sigma^2]`` with
  ``a_t = [beta_t - cos(psi-phi) c w_t; -cos(psi-phi) s w_t]``,
  ``a'_t = [sin(psi-phi) s w_t; -sin(psi-phi) c w_t]``, plus ``2 a_{t,r}^T n_t`` (value: the task
  risk; gradient: the swap's);
- reconstruction through the exact tied decoder is identically zero (no term);
- target: ``Z_r ~ N(0, v I + delta D)``, independent of ``Z_s`` and the labels; ``D`` a unit-Frobenius PSD
  direction, random per seed or the worst case for the model's heads (S2),
  ``D = sum_t w_t w_t^T / ||sum_t w_t w_t^T||_F``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from coremtl.batched.stacked import block_rotations


def joint_covariance(v: Tensor, rho: Tensor, k: int) -> Tensor:
    """Source ``Cov([Z_s; Z_r])`` per model: ``[[I, rho sqrt(v) I], [rho sqrt(v) I, v I]]``."""
    eye = torch.eye(k, dtype=v.dtype, device=v.device)
    cross = (rho * v.sqrt())[:, None, None] * eye
    top = torch.cat([eye.expand_as(cross), cross], dim=2)
    bottom = torch.cat([cross, v[:, None, None] * eye], dim=2)
    return torch.cat([top, bottom], dim=1)


def label_loading(loading: Tensor, beta: Tensor, noise_var: Tensor) -> Tensor:
    """``A = a I_{k x K} diag(Var Y_t)^{-1/2}`` per model ``(M, k, K)``: residual coordinate ``i``
    copies the standardised label ``i`` (``Var Y_t = ||beta_t||^2 + sigma^2``), so the copy adds
    ``a^2`` to its variance whatever the seed's ``beta``."""
    k, tasks = beta.shape[1], beta.shape[2]
    eye = torch.eye(k, tasks, dtype=beta.dtype, device=beta.device)
    scale = (beta.square().sum(dim=1) + noise_var[:, None]).rsqrt()
    return loading[:, None, None] * eye * scale[:, None, :]


def source_moments(
    v: Tensor, rho: Tensor, beta: Tensor, loading: Tensor, noise_var: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """``(Sigma_J, N, Sigma_J|Y)`` per model: the source ``Cov([Z_s; Z_r])``, ``N = Cov(Z_r, eps)``
    ``(M, k, K)`` and ``Cov([Z_s; Z_r] | Y)``, for ``Z_r = A Y + E`` (:func:`label_loading`).

    With ``X = Cov(Z_s, E)``, ``Sigma_Y = beta^T beta + sigma^2 I``:
    ``Cov(Z_s, Z_r) = X + beta A^T``, ``Cov(Z_s, Y) = beta``, ``Cov(Z_r, Y) = A Sigma_Y + X^T beta``,
    ``Cov(Z_r) = v I + A Sigma_Y A^T + A beta^T X + X^T beta A^T``, ``N = sigma^2 A``; the
    conditional covariance is ``J_zz - J_zy Sigma_Y^{-1} J_yz``."""
    k, tasks = beta.shape[1], beta.shape[2]
    base = joint_covariance(v, rho, k)
    cross = base[:, :k, k:]
    a = label_loading(loading, beta, noise_var)
    labels = beta.transpose(1, 2) @ beta + noise_var[:, None, None] * torch.eye(
        tasks, dtype=beta.dtype, device=beta.device
    )
    copied = a @ beta.transpose(1, 2) @ cross
    joint = base.clone()
    joint[:, :k, k:] = cross + beta @ a.transpose(1, 2)
    joint[:, k:, :k] = joint[:, :k, k:].transpose(1, 2)
    joint[:, k:, k:] = base[:, k:, k:] + a @ labels @ a.transpose(1, 2) + copied
    joint[:, k:, k:] += copied.transpose(1, 2)
    with_labels = torch.cat([beta, a @ labels + cross.transpose(1, 2) @ beta], dim=1)
    conditional = joint - with_labels @ torch.linalg.solve(labels, with_labels.transpose(1, 2))
    return joint, noise_var[:, None, None] * a, conditional


def target_covariance(v: Tensor, direction: Tensor, delta: float) -> Tensor:
    """Target ``Cov([Z_s; Z_r])``: ``[[I, 0], [0, v I + delta D]]``."""
    k = direction.shape[1]
    eye = torch.eye(k, dtype=v.dtype, device=v.device)
    joint = torch.zeros(v.shape[0], 2 * k, 2 * k, dtype=v.dtype, device=v.device)
    joint[:, :k, :k] = eye
    joint[:, k:, k:] = v[:, None, None] * eye + delta * direction
    return joint


def _quadratic(vectors: Tensor, joint: Tensor) -> Tensor:
    return torch.einsum("mit,mij,mjt->mt", vectors, joint, vectors)


def _with_noise(vectors: Tensor, label_noise: Tensor | None) -> Tensor:
    """``2 u_{t,r}^T n_t`` per model and task (0 without a label copy)."""
    if label_noise is None:
        return vectors.new_zeros(vectors.shape[0], vectors.shape[2])
    k = label_noise.shape[1]
    return 2 * (vectors[:, k:, :] * label_noise).sum(dim=1)


def task_risks(
    params: dict, beta: Tensor, joint: Tensor, noise_var: Tensor, label_noise: Tensor | None = None
) -> Tensor:
    """``R_t`` per model and task ``(M, K)``; ``beta`` is ``(M, k, K)`` (column ``t`` = ``beta_t``);
    ``label_noise`` is ``N = Cov(Z_r, eps)`` (None: 0)."""
    psi, weights, bias = params["psi"], params["head_w"], params["head_b"][:, 0, :]
    c, s = torch.cos(psi)[:, None, None], torch.sin(psi)[:, None, None]
    vectors = torch.cat([beta - c * weights, -s * weights], dim=1)
    return (
        _quadratic(vectors, joint) + _with_noise(vectors, label_noise) + bias.square() + noise_var
    )


def stream_cka(psi: Tensor, joint: Tensor) -> Tensor:
    """Population linear CKA of the streams per model ``(M,)``."""
    k = joint.shape[1] // 2
    rotation = block_rotations(psi, k)
    cov = rotation @ joint @ rotation.transpose(1, 2)
    c_ss, c_sr, c_rr = cov[:, :k, :k], cov[:, :k, k:], cov[:, k:, k:]
    return (
        c_sr.square().sum((1, 2)) / (c_ss.square().sum((1, 2)) * c_rr.square().sum((1, 2))).sqrt()
    )


def swap_loss(
    params: dict, beta: Tensor, joint: Tensor, noise_var: Tensor, label_noise: Tensor | None = None
) -> Tensor:
    """Population input-level CFA loss per model ``(M,)`` (gradient through the re-encoding)."""
    psi, weights, bias = params["psi"], params["head_w"], params["head_b"][:, 0, :]
    phi = psi.detach()
    offset = psi - phi
    cd, sd = torch.cos(offset)[:, None, None], torch.sin(offset)[:, None, None]
    c, s = torch.cos(phi)[:, None, None], torch.sin(phi)[:, None, None]
    own = torch.cat([beta - cd * c * weights, -cd * s * weights], dim=1)
    other = torch.cat([sd * s * weights, -sd * c * weights], dim=1)
    risk = _quadratic(own, joint) + _quadratic(other, joint) + bias.square() + noise_var
    return (risk + _with_noise(own, label_noise)).mean(dim=1)


def worst_direction(weights: Tensor) -> Tensor:
    """``sum_t w_t w_t^T`` normalised to unit Frobenius norm, per model ``(M, k, k)``."""
    outer = weights @ weights.transpose(1, 2)
    norm = outer.square().sum((1, 2)).sqrt().clamp_min(1e-300)
    return outer / norm[:, None, None]


def random_direction(k: int, rng: np.random.Generator) -> np.ndarray:
    """A random PSD direction ``A A^T / ||A A^T||_F`` (``A`` standard normal ``k x k``)."""
    a = rng.standard_normal((k, k))
    outer = a @ a.T
    return outer / np.linalg.norm(outer)


def to_numpy(tensor: Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy()


def evaluate(params: dict, units: dict, deltas: tuple[float, ...]) -> dict[str, np.ndarray]:
    """Closed-form measurements of angle models ``params`` on ``units`` (one row per model):
    source risk minus Bayes, target risk and gap (mean over tasks) per direction and shift size,
    ``sin^2 psi``, leakage over semantic gain ``|tan psi|``, population stream CKA, unconditional
    and given the labels."""
    with torch.no_grad():
        psi, weights = params["psi"], params["head_w"]
        joint, label_noise, conditional = source_moments(
            units["v"], units["rho"], units["beta"], units["loading"], units["noise_var"]
        )
        noise = units["noise_var"][:, None]
        source = task_risks(params, units["beta"], joint, noise, label_noise).mean(1)
        out = {
            "source_excess": to_numpy(source - units["noise_var"]),
            "source_risk": to_numpy(source),
            "sin2_psi": to_numpy(torch.sin(psi).square()),
            "leakage_ratio": to_numpy(torch.tan(psi).abs()),
            "stream_cka": to_numpy(stream_cka(psi, joint)),
            "conditional_cka": to_numpy(stream_cka(psi, conditional)),
        }
        directions = {"random": units["direction"], "worst": worst_direction(weights)}
        for kind, direction in directions.items():
            for delta in deltas:
                joint = target_covariance(units["v"], direction, delta)
                target = task_risks(params, units["beta"], joint, units["noise_var"][:, None]).mean(
                    1
                )
                out[f"target|{kind}|{delta}"] = to_numpy(target)
                out[f"gap|{kind}|{delta}"] = to_numpy(target - source)
    return out
