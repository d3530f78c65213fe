r"""A multi-task SCM with task-specific semantic factors and a source-only correlation between them.

The setting of MT-CRL's claim (Hu et al., "Improving Multi-Task Generalization via Regularizing
Spurious Correlation", NeurIPS 2022): knowledge that is causal for one task can be spurious for
another, and a confounder between task labels adds a second kind of spurious correlation
(docs/THEORY.md S12). Setting S (:class:`scm.model.LinearGaussianSCM`) is left unchanged.

Model. Task ``t`` has its own block ``Z_t`` in ``R^{k_t}`` of ``Z = [Z_1; ...; Z_K]`` in ``R^d``, an
optional confounder ``U ~ N(0, I_q)`` and

    Y_t = beta_t^T Z_t + gamma_t^T U + eps_t,      eps_t ~ N(0, sigma_t^2),      x = G Z,

with ``G`` orthogonal. ``B`` (K x d) holds ``beta_t`` in task ``t``'s block and zeros elsewhere,
``Gamma`` (K x q) the confounder loadings. In environment ``e`` the latents are zero-mean Gaussian
with ``Cov(Z) = S_e`` and ``Cov(Z, U) = C_e``; the diagonal blocks ``Cov(Z_t) = Sigma_t`` are the
same in every environment (each task's own factor law is invariant); only the blocks between
tasks and the confounding change. ``source_environments`` are the training environments; the
source is their equal mixture, whose second moments (all a linear predictor's squared risk sees)
are the averages ``S_S = mean_e S_e``, ``C_S = mean_e C_e``.

Closed forms, for predictors ``yhat_t = a_t^T z`` (latent coordinates; a predictor ``w^T x`` on the
observation has ``a = G^T w``), with ``c_t = Cov(Z, Y_t) = S b_t + C gamma_t``:

- risk ``R_t^e(a) = a^T S_e a - 2 a^T c_t^e + Var_e(Y_t)``;
- single task: each task its own encoder, of any width ``m >= 1``. A scalar prediction is rank
  one, so its optimum is the task's own least-squares predictor ``a_t = S^{-1} c_t``, rows of
  ``A_0 = C_{ZY}^T S^{-1}``; without confounding ``A_0 = B`` (causal, in every environment);
- multi task: one shared linear encoder ``W`` (m x d) and linear heads ``H`` (K x m), task weights
  ``lambda_t > 0``. ``sum_t lambda_t R_t = ||Lambda^{1/2} (HW - A_0) S^{1/2}||_F^2 + const``, so by
  Eckart-Young (reduced-rank regression, Izenman 1975) the optimum is
  ``A* = Lambda^{-1/2} P_m Lambda^{1/2} A_0`` with ``P_m`` the projection on the top-m eigenvectors
  of ``Q_lambda = Lambda^{1/2} A_0 S A_0^T Lambda^{1/2}`` (equivalently the top-m generalized
  eigenvectors of ``(C C^T, S)``), unique iff ``lambda_m > lambda_{m+1}`` or ``m >= rank``. The
  same holds for any encoder ``phi: x -> R^m`` followed by linear heads, because ``E[Y | x]`` is
  linear: for fixed ``H`` the best ``phi`` gives ``H phi = Pi_H E[Y | x]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from scm.generate import haar_orthogonal, random_psd
from scm.validation import (
    InvalidParameterError,
    as_finite_array,
    check_covariance,
    check_orthogonal,
    check_positive_int,
    psd_sqrt,
)

SOURCE = "source"
TARGET = "target"


@dataclass(frozen=True)
class LatentLaw:
    """``Cov(Z) = cov`` (d x d) and ``Cov(Z, U) = confounding`` (d x q) in one environment."""

    cov: np.ndarray
    confounding: np.ndarray

    def joint(self) -> np.ndarray:
        """``Cov([Z; U])`` with ``Cov(U) = I_q``."""
        q = self.confounding.shape[1]
        return np.block([[self.cov, self.confounding], [self.confounding.T, np.eye(q)]])


@dataclass(frozen=True)
class MultiTaskSCM:
    """Task-specific blocks, environment-dependent cross-task correlation, optional confounder."""

    block_sizes: tuple[int, ...]
    beta: np.ndarray
    environments: Mapping[str, LatentLaw]
    noise_std: np.ndarray
    confounder_loadings: np.ndarray | None = None
    mixing: np.ndarray | None = None
    source_environments: tuple[str, ...] = (SOURCE,)

    def __post_init__(self) -> None:
        sizes = tuple(check_positive_int(size, "block_sizes") for size in self.block_sizes)
        if len(sizes) < 1:
            raise InvalidParameterError("block_sizes: expected one block per task (K >= 1)")
        d, num_tasks = sum(sizes), len(sizes)
        beta = as_finite_array(self.beta, "beta", ndim=2)
        if beta.shape != (num_tasks, d):
            raise InvalidParameterError(
                f"beta: expected shape ({num_tasks}, {d}), got {beta.shape}"
            )
        own = block_mask(sizes)
        if np.any(beta[~own] != 0):
            raise InvalidParameterError("beta: task t may only read its own block Z_t")
        noise = as_finite_array(self.noise_std, "noise_std", ndim=1)
        if noise.shape != (num_tasks,) or np.any(noise < 0):
            raise InvalidParameterError(f"noise_std: expected {num_tasks} values >= 0")
        loadings = np.zeros((num_tasks, 0)) if self.confounder_loadings is None else None
        if loadings is None:
            loadings = as_finite_array(self.confounder_loadings, "confounder_loadings", ndim=2)
            if loadings.shape[0] != num_tasks:
                raise InvalidParameterError(
                    f"confounder_loadings: expected shape ({num_tasks}, q), got {loadings.shape}"
                )
        mixing = check_orthogonal(np.eye(d) if self.mixing is None else self.mixing, "mixing", d)
        names = tuple(self.source_environments)
        laws = {
            name: self._checked_law(name, law, d, loadings.shape[1])
            for name, law in dict(self.environments).items()
        }
        missing = [name for name in (*names, TARGET) if name not in laws]
        if missing or not names:
            raise InvalidParameterError(
                f"environments: expected laws for {', '.join(missing) or 'a source'}"
            )
        if SOURCE in laws and names != (SOURCE,):
            raise InvalidParameterError(
                "environments: 'source' names the mixture of source_environments; rename it"
            )
        reference = next(iter(laws.values())).cov
        for name, law in laws.items():
            if np.max(np.abs((law.cov - reference)[block_diagonal(sizes)]), initial=0) > 1e-9:
                raise InvalidParameterError(
                    f"environments[{name!r}]: the within-task blocks Cov(Z_t) must be the same in "
                    "every environment"
                )
        for name, value in (
            ("block_sizes", sizes),
            ("beta", beta),
            ("noise_std", noise),
            ("confounder_loadings", loadings),
            ("mixing", mixing),
            ("source_environments", names),
            ("environments", laws),
        ):
            object.__setattr__(self, name, value)

    @staticmethod
    def _checked_law(name: str, law: LatentLaw, d: int, q: int) -> LatentLaw:
        if not isinstance(law, LatentLaw):
            raise InvalidParameterError(f"environments[{name!r}]: expected a LatentLaw")
        cov = check_covariance(law.cov, f"environments[{name!r}].cov", dim=d)
        confounding = as_finite_array(law.confounding, f"environments[{name!r}].confounding", 2)
        if confounding.shape != (d, q):
            raise InvalidParameterError(
                f"environments[{name!r}].confounding: expected shape ({d}, {q}), "
                f"got {confounding.shape}"
            )
        checked = LatentLaw(cov, confounding)
        check_covariance(checked.joint(), f"environments[{name!r}] joint law of (Z, U)")
        return checked

    @property
    def num_tasks(self) -> int:
        return len(self.block_sizes)

    @property
    def dim(self) -> int:
        """``d = sum_t k_t``, the number of latent (and observed) coordinates."""
        return sum(self.block_sizes)

    def law(self, env: str) -> LatentLaw:
        """The law of ``env``; ``'source'`` is the mixture of the source environments."""
        if env == SOURCE and SOURCE not in self.environments:
            laws = [self.environments[name] for name in self.source_environments]
            return LatentLaw(
                np.mean([law.cov for law in laws], axis=0),
                np.mean([law.confounding for law in laws], axis=0),
            )
        if env not in self.environments:
            raise InvalidParameterError(
                f"env: expected 'source' or one of {sorted(self.environments)}, got {env!r}"
            )
        return self.environments[env]

    def describe(self) -> dict:
        """A JSON-serialisable description of every parameter."""
        return {
            "block_sizes": list(self.block_sizes),
            "beta": self.beta.tolist(),
            "noise_std": self.noise_std.tolist(),
            "confounder_loadings": self.confounder_loadings.tolist(),
            "mixing": self.mixing.tolist(),
            "source_environments": list(self.source_environments),
            "environments": {
                name: {"cov": law.cov.tolist(), "confounding": law.confounding.tolist()}
                for name, law in self.environments.items()
            },
        }


def block_mask(block_sizes: Sequence[int]) -> np.ndarray:
    """Boolean (K, d): entry ``(t, i)`` is true when coordinate ``i`` lies in task ``t``'s block."""
    edges = np.cumsum([0, *block_sizes])
    mask = np.zeros((len(block_sizes), edges[-1]), dtype=bool)
    for task in range(len(block_sizes)):
        mask[task, edges[task] : edges[task + 1]] = True
    return mask


def block_diagonal(block_sizes: Sequence[int]) -> np.ndarray:
    """Boolean (d, d): true inside the diagonal blocks ``Cov(Z_t)``."""
    mask = block_mask(block_sizes).astype(float)
    return (mask.T @ mask) > 0


# ------------------------------------------------------------------ second moments and risks


def feature_label_covariance(model: MultiTaskSCM, env: str) -> np.ndarray:
    """``Cov(Z, Y) = S B^T + C Gamma^T`` (d x K)."""
    law = model.law(env)
    return law.cov @ model.beta.T + law.confounding @ model.confounder_loadings.T


def label_covariance(model: MultiTaskSCM, env: str) -> np.ndarray:
    """``Cov(Y) = B S B^T + B C Gamma^T + Gamma C^T B^T + Gamma Gamma^T + diag(sigma^2)``."""
    law, b, g = model.law(env), model.beta, model.confounder_loadings
    cross = b @ law.confounding @ g.T
    return b @ law.cov @ b.T + cross + cross.T + g @ g.T + np.diag(model.noise_std**2)


def risks(model: MultiTaskSCM, predictors, env: str) -> np.ndarray:
    """``R_t^e(a_t) = a_t^T S a_t - 2 a_t^T c_t + Var(Y_t)`` per task, predictors (K, d) in latent
    coordinates."""
    a = as_finite_array(predictors, "predictors", ndim=2)
    if a.shape != (model.num_tasks, model.dim):
        raise InvalidParameterError(
            f"predictors: expected shape ({model.num_tasks}, {model.dim}), got {a.shape}"
        )
    law = model.law(env)
    c = feature_label_covariance(model, env)
    quadratic = np.einsum("ti,ij,tj->t", a, law.cov, a)
    return quadratic - 2 * np.einsum("ti,it->t", a, c) + np.diag(label_covariance(model, env))


def ood_gaps(model: MultiTaskSCM, predictors) -> np.ndarray:
    """``R_T - R_S`` per task."""
    return risks(model, predictors, TARGET) - risks(model, predictors, SOURCE)


def signal_covariance(model: MultiTaskSCM, env: str = SOURCE) -> np.ndarray:
    """``Q = A_0 S A_0^T = C^T S^{-1} C`` (K x K), the covariance of the tasks' best linear signals;
    ``B S B^T`` without confounding."""
    c = feature_label_covariance(model, env)
    return c.T @ np.linalg.solve(model.law(env).cov, c)


def single_task_predictors(model: MultiTaskSCM, env: str = SOURCE) -> np.ndarray:
    """``A_0 = Cov(Z, Y)^T S^{-1}`` (K x d): each task's own least-squares predictor, the optimum of
    a single-task model with an encoder of any width ``m >= 1``."""
    law = model.law(env)
    return np.linalg.solve(law.cov, feature_label_covariance(model, env)).T


@dataclass(frozen=True)
class SharedOptimum:
    """The source-optimal shared encoder of width ``m`` and its heads (reduced-rank regression)."""

    predictors: np.ndarray
    encoder: np.ndarray
    heads: np.ndarray
    projection: np.ndarray
    eigenvalues: np.ndarray
    eigengap: float
    unique: bool


def multitask_predictors(
    model: MultiTaskSCM, width: int, env: str = SOURCE, task_weights=None
) -> SharedOptimum:
    """``A* = Lambda^{-1/2} P_m Lambda^{1/2} A_0`` minimising ``sum_t lambda_t R_t`` over shared
    linear encoders of width ``m`` with linear heads (Eckart-Young on ``Lambda^{1/2} A_0 S^{1/2}``).

    ``encoder = U_m^T Lambda^{1/2} A_0`` (m x d), ``heads = Lambda^{-1/2} U_m`` (K x m);
    ``eigenvalues`` of ``Q_lambda`` in decreasing order, ``eigengap = lambda_m - lambda_{m+1}``
    (infinite for ``m >= K``); ``unique`` when the gap is positive or ``lambda_{m+1} = 0``.
    """
    width = check_positive_int(width, "width")
    k = model.num_tasks
    weights = (
        np.ones(k)
        if task_weights is None
        else as_finite_array(task_weights, "task_weights", ndim=1)
    )
    if weights.shape != (k,) or np.any(weights <= 0):
        raise InvalidParameterError(f"task_weights: expected {k} positive numbers")
    root = np.sqrt(weights)
    a0 = single_task_predictors(model, env)
    q = root[:, None] * signal_covariance(model, env) * root[None, :]
    eigenvalues, eigenvectors = np.linalg.eigh(q)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues, eigenvectors = eigenvalues[order], eigenvectors[:, order]
    m = min(width, k)
    top = eigenvectors[:, :m]
    projection = top @ top.T
    scale = max(1.0, float(eigenvalues[0]))
    eigengap = float("inf") if width >= k else float(eigenvalues[m - 1] - eigenvalues[m])
    unique = width >= k or eigengap > 1e-9 * scale or eigenvalues[m] <= 1e-12 * scale
    encoder = top.T @ (root[:, None] * a0)
    heads = top / root[:, None]
    return SharedOptimum(
        heads @ encoder, encoder, heads, projection, eigenvalues, eigengap, bool(unique)
    )


def cross_task_weights(model: MultiTaskSCM, predictors) -> np.ndarray:
    """``N[t, u] = ||a_t restricted to block u||``: how much task ``t`` reads task ``u``'s factor
    (the off-diagonal entries are the weight on other tasks' causal factors)."""
    a = as_finite_array(predictors, "predictors", ndim=2)
    mask = block_mask(model.block_sizes)
    return np.sqrt(np.stack([(a**2 * mask[u]).sum(axis=1) for u in range(model.num_tasks)], 1))


def off_block_weight(model: MultiTaskSCM, predictors) -> np.ndarray:
    """``||a_t outside block t||`` per task: the weight on the other tasks' causal factors."""
    a = as_finite_array(predictors, "predictors", ndim=2)
    return np.sqrt((a**2 * ~block_mask(model.block_sizes)).sum(axis=1))


# ------------------------------------------------------------------ construction and sampling


def _correlation(value, num_tasks: int, name: str) -> np.ndarray:
    """A K x K correlation matrix: a number ``c`` means ``(1 - c) I + c 1 1^T``."""
    array = as_finite_array(value, name)
    if array.ndim == 0:
        array = (1 - float(array)) * np.eye(num_tasks) + float(array) * np.ones((num_tasks,) * 2)
    matrix = check_covariance(array, name, dim=num_tasks)
    if np.max(np.abs(np.diag(matrix) - 1)) > 1e-12:
        raise InvalidParameterError(f"{name}: expected a unit diagonal (a correlation matrix)")
    return matrix


def block_correlated_scm(
    beta,
    correlations: Mapping[str, object],
    block_covariances=None,
    noise_std: float = 0.1,
    source_environments: Sequence[str] = (SOURCE,),
    confounder_loadings=None,
    confounding: Mapping[str, object] | None = None,
    mixing=None,
) -> MultiTaskSCM:
    """Blocks of equal size ``k``: ``beta`` (K, k) one row per task, ``Cov(Z_t) = Sigma_t``
    (``block_covariances`` (K, k, k), identity by default) and, in environment ``e``,
    ``Cov(Z_t, Z_u) = R^e_tu Sigma_t^{1/2} Sigma_u^{1/2}`` with ``R^e = correlations[e]`` (a
    correlation matrix or a number ``c`` for ``(1 - c) I + c 1 1^T``), so ``S_e = L (R^e (x) I_k) L``
    with ``L = blockdiag(Sigma_t^{1/2})``, PSD iff ``R^e`` is. ``confounding[e]`` is ``Cov(Z, U)``
    (d x q) with ``confounder_loadings`` (K, q); ``mixing`` an orthogonal matrix or ``'haar:<seed>'``.
    """
    beta = as_finite_array(beta, "beta", ndim=2)
    num_tasks, k = beta.shape
    covs = (
        np.stack([np.eye(k)] * num_tasks)
        if block_covariances is None
        else as_finite_array(block_covariances, "block_covariances", ndim=3)
    )
    if covs.shape != (num_tasks, k, k):
        raise InvalidParameterError(f"block_covariances: expected shape ({num_tasks}, {k}, {k})")
    roots = [psd_sqrt(check_covariance(c, "block_covariances")) for c in covs]
    root = np.zeros((num_tasks * k,) * 2)
    for t, r in enumerate(roots):
        root[t * k : (t + 1) * k, t * k : (t + 1) * k] = r
    q = 0 if confounder_loadings is None else np.atleast_2d(confounder_loadings).shape[1]
    laws = {}
    for name, value in correlations.items():
        corr = _correlation(value, num_tasks, f"correlations[{name!r}]")
        cov = root @ np.kron(corr, np.eye(k)) @ root
        conf = np.zeros((num_tasks * k, q))
        if confounding is not None and name in confounding:
            conf = as_finite_array(confounding[name], f"confounding[{name!r}]", ndim=2)
        laws[name] = LatentLaw(cov, conf)
    full_beta = np.zeros((num_tasks, num_tasks * k))
    for t in range(num_tasks):
        full_beta[t, t * k : (t + 1) * k] = beta[t]
    if isinstance(mixing, str):
        if not mixing.startswith("haar:"):
            raise InvalidParameterError(
                f"mixing: expected a matrix or 'haar:<seed>', got {mixing!r}"
            )
        mixing = haar_orthogonal(num_tasks * k, np.random.default_rng(int(mixing[5:])))
    return MultiTaskSCM(
        block_sizes=(k,) * num_tasks,
        beta=full_beta,
        environments=laws,
        noise_std=np.full(num_tasks, float(noise_std)),
        confounder_loadings=None
        if confounder_loadings is None
        else np.atleast_2d(confounder_loadings),
        mixing=mixing,
        source_environments=tuple(source_environments),
    )


def two_task_scm(beta=(1.0, 1.0), rho_source=0.5, rho_target=0.0, noise_std=0.1) -> MultiTaskSCM:
    """Two tasks with scalar blocks, unit variances and ``Corr(Z_1, Z_2) = rho`` per environment."""
    return block_correlated_scm(
        np.asarray(beta, dtype=float).reshape(2, 1),
        {SOURCE: rho_source, TARGET: rho_target},
        noise_std=noise_std,
    )


def random_multitask_scm(
    num_tasks: int = 3,
    block_size: int = 1,
    correlation: float = 0.5,
    target_correlation: float = 0.0,
    seed: int = 0,
    noise_std: float = 0.1,
    confounding: float = 0.0,
    target_confounding: float = 0.0,
    mixing: str = "identity",
) -> MultiTaskSCM:
    """A seeded random instance: ``beta_t ~ N(0, I)``, ``Sigma_t`` from :func:`random_psd`, random
    signs ``s_t`` and the correlation matrix ``R = (1 - |c|) I + c s s^T`` (unit diagonal) with
    ``c`` = ``correlation`` in the source and ``target_correlation`` in the target (PSD for
    ``-1/(K-1) <= c <= 1``); with a scalar
    confounder (loadings ``~ N(0, 1)``), ``Cov(Z, U) = kappa S^{1/2} v`` for a random unit ``v``
    (``kappa`` = ``confounding`` / ``target_confounding``, PSD for ``|kappa| <= 1``)."""
    num_tasks = check_positive_int(num_tasks, "num_tasks")
    k = check_positive_int(block_size, "block_size")
    rng = np.random.default_rng(seed)
    beta = rng.standard_normal((num_tasks, k))
    covs = np.stack([random_psd(k, rng, 0.3) for _ in range(num_tasks)])
    signs = np.where(rng.random(num_tasks) < 0.5, -1.0, 1.0)
    pattern = np.outer(signs, signs)
    correlations = {}
    for name, c in ((SOURCE, correlation), (TARGET, target_correlation)):
        if not -1.0 <= c <= 1.0:
            raise InvalidParameterError(f"correlation: expected a value in [-1, 1], got {c}")
        corr = c * pattern + (1 - abs(c)) * np.eye(num_tasks)
        np.fill_diagonal(corr, 1.0)
        correlations[name] = corr
    model = block_correlated_scm(
        beta, correlations, covs, noise_std, mixing=None if mixing == "identity" else f"haar:{seed}"
    )
    if confounding == 0.0 and target_confounding == 0.0:
        return model
    direction = rng.standard_normal(model.dim)
    direction /= np.linalg.norm(direction)
    conf = {
        name: kappa * psd_sqrt(model.law(name).cov) @ direction[:, None]
        for name, kappa in ((SOURCE, confounding), (TARGET, target_confounding))
    }
    return block_correlated_scm(
        beta,
        correlations,
        covs,
        noise_std,
        confounder_loadings=rng.standard_normal((num_tasks, 1)),
        confounding=conf,
        mixing=model.mixing,
    )


@dataclass(frozen=True)
class MultiTaskSample:
    """``n`` draws: observations ``x`` (n, d), latents ``z`` (n, d), confounder ``u`` (n, q), labels
    ``y`` (n, K) and ``environment`` (n,), the index of each draw's environment in
    ``source_environments`` (0 outside the source)."""

    x: np.ndarray
    z: np.ndarray
    u: np.ndarray
    y: np.ndarray
    environment: np.ndarray


def sample(model: MultiTaskSCM, n: int, env: str = SOURCE, seed: int = 0) -> MultiTaskSample:
    """``n`` draws from ``env``; ``'source'`` splits them as evenly as possible over the source
    environments (the first ones take the remainder), in that order."""
    n = check_positive_int(n, "n")
    rng = np.random.default_rng(seed)
    names = (
        model.source_environments if env == SOURCE and SOURCE not in model.environments else (env,)
    )
    counts = [n // len(names) + (i < n % len(names)) for i in range(len(names))]
    parts, labels = [], []
    for index, (name, count) in enumerate(zip(names, counts, strict=True)):
        joint = model.law(name).joint()
        parts.append(rng.standard_normal((count, joint.shape[0])) @ psd_sqrt(joint))
        labels.append(np.full(count, index))
    latents = np.concatenate(parts)
    z, u = latents[:, : model.dim], latents[:, model.dim :]
    noise = rng.standard_normal((n, model.num_tasks)) * model.noise_std
    y = z @ model.beta.T + u @ model.confounder_loadings.T + noise
    return MultiTaskSample(z @ model.mixing.T, z, u, y, np.concatenate(labels))
