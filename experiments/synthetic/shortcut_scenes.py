"""Pieces of the shortcut study (study 9): rendered data with a class-hue shortcut, a small
dual-stream conv net, one training run through :class:`coremtl.trainer.Trainer`, and the probes.

Data (:mod:`experiments.vision.scenes`). Source: the source law with shortcut strength ``p``, the
probability that a class's albedo takes the class's own hue ``c / C`` instead of a palette draw
(Colored-Cityscapes at CPU scale). Two targets, each differing from the source in one thing,
whether hue follows the class: the random-hue target, the same law without the shortcut (the
target at shift 0), where hue is independent of the class; and the permuted-hue target
(Colored-Cityscapes' own), the same law whose shortcut gives class ``c`` the hue ``pi(c) / C`` of
class ``pi(c)`` for a derangement ``pi`` of the classes
(:func:`experiments.vision.scenes.permuted_environment`), so reading the class from the hue is
wrong on every class rather than at random. Every split of a seed renders the same layouts
whatever the method, so methods are paired; the two targets render the same split names, so they
share layouts and every residual draw but the hue (common random numbers), and are paired too.

Model: ``encoder`` (three 3x3 conv-BN-ReLU layers, output stride 4) -> 1x1 split into ``Z_s`` and
``Z_r`` maps (:class:`coremtl.representation.StreamSplit`) -> per-task 3x3 conv heads on ``Z_s``
only, upsampled x4; decoder ``sigmoid(ConvDecoder(Z_s, Z_r))`` (AdaIN style from pooled ``Z_r``,
:class:`coremtl.grounding.ConvDecoder`) for reconstruction and input-level CFA.

Probes of the residual factor in the semantic stream, on shortcut-free images (the source law
without its shortcut, where hue varies independently of the layout; in the shortcut source at
``p = 1`` the floor's hue does not vary, so there is nothing to fit): the hue of the floor's albedo (class 0, in every image) split at its median into a
binary label; a linear probe (ridge regression on standardised pooled ``Z_s``, the sign of its
output) is fitted on one split and its accuracy read on another (chance 0.5). The same probe on
pooled ``Z_r`` is the reference, and the debiased linear CKA of the pooled streams
(:func:`coremtl.cka.linear_cka`) is reported beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from experiments.vision.scenes import (
    SceneConfig,
    SceneRenderer,
    make_environment,
    permuted_environment,
)
from scm.validation import InvalidParameterError

TASKS = ("segmentation", "depth")
FLOOR_SLOT = 0
PROBE_RIDGE = 1.0
"""Ridge penalty of the linear probe, relative to the number of fitting samples."""


@dataclass(frozen=True)
class ShortcutSetup:
    """Data, network and training settings shared by every run of the study."""

    resolution: tuple[int, int] = (32, 32)
    train: int = 256
    val: int = 128
    test: int = 256
    probe: int = 256
    min_objects: int = 3
    max_objects: int = 6
    far_objects: float = 5.0
    width: int = 16
    decoder_width: int = 12
    semantic_channels: int = 16
    residual_channels: int = 8
    batch_size: int = 16
    epochs: int = 6
    learning_rate: float = 5e-3
    independence_start: float = 0.25
    """Share of the steps after which CFA starts and over which the CKA weight ramps up."""


def scene_config(setup: ShortcutSetup, seed: int) -> SceneConfig:
    return SceneConfig(
        resolution=setup.resolution,
        min_objects=setup.min_objects,
        max_objects=setup.max_objects,
        far_objects=setup.far_objects,
        seed=seed,
    )


def render(
    setup: ShortcutSetup,
    seed: int,
    split: str,
    n: int,
    shortcut: float | None,
    permutation: Sequence[int] | None = None,
) -> dict:
    """``n`` samples of ``split``: the source law with ``shortcut``, or the shortcut-free target
    (shift 0) for ``shortcut=None``, or with ``permutation`` the permuted target (class ``c``
    takes the hue of class ``permutation[c]`` with probability ``shortcut``); the image, the task
    labels and every slot's albedo hue (``slot_hues``)."""
    from coremtl.lighting import linear_to_srgb

    renderer = SceneRenderer(scene_config(setup, seed))
    if permutation is not None:
        if shortcut is None:
            raise InvalidParameterError(
                "shortcut: expected the permuted target's strength in [0, 1], got None"
            )
        environment = permuted_environment(permutation, shortcut)
    elif shortcut is None:
        environment = make_environment("target", shift=0.0)
    else:
        environment = make_environment("source", shortcut=shortcut)
    indices = list(range(n))
    fields = renderer.render(indices, split, environment)
    albedo = renderer.appearance(indices, split, environment).albedo
    batch = {key: fields[key].contiguous() for key in ("image", *TASKS)}
    batch["slot_hues"] = slot_hues(linear_to_srgb(albedo))
    return batch


def slot_hues(srgb: Tensor) -> Tensor:
    """``(B, slots)`` HSV hue in turns of ``(B, slots, 3)`` sRGB colours."""
    from matplotlib.colors import rgb_to_hsv

    return torch.as_tensor(rgb_to_hsv(srgb.clamp(0, 1).numpy())[..., 0], dtype=torch.float32)


def hue_class_agreement(
    hues: Tensor, num_classes: int, permutation: Sequence[int] | None = None
) -> float:
    """Share of ``(sample, class)`` slots whose hue is nearest (on the hue circle) to the class
    hue ``pi(c) / C`` among the ``C`` class hues, ``pi`` = ``permutation`` (the identity when
    ``None``: its own hue): 1 when hue names the class ``pi(c)``, ``~1/C`` when hue is unrelated
    to the class (the data check of the shortcut)."""
    class_hues = torch.arange(num_classes, dtype=torch.float32) / num_classes
    distance = (hues[:, :num_classes, None] - class_hues).abs()
    distance = torch.minimum(distance, 1 - distance)
    nearest = distance.argmin(dim=-1)
    expected = torch.arange(num_classes) if permutation is None else torch.tensor(permutation)
    return float((nearest == expected).float().mean())


class SigmoidDecoder(nn.Module):
    """``sigmoid(ConvDecoder(Z_s, Z_r))``: an sRGB image in ``(0, 1)``."""

    def __init__(self, semantic: int, residual: int, hidden: int, upsampling: int) -> None:
        from coremtl.grounding import ConvDecoder

        super().__init__()
        self.decoder = ConvDecoder(semantic, residual, 3, hidden, upsampling)

    def forward(self, z_s: Tensor, z_r: Tensor) -> Tensor:
        return torch.sigmoid(self.decoder(z_s, z_r))


def _conv(fan_in: int, fan_out: int, stride: int) -> list[nn.Module]:
    return [
        nn.Conv2d(fan_in, fan_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(fan_out),
        nn.ReLU(),
    ]


def build_model(setup: ShortcutSetup, num_classes: int) -> nn.Module:
    """The dual-stream conv net of the module docstring (every method trains this one)."""
    from coremtl.representation import DualStreamModel, StreamSplit

    width = setup.width
    encoder = nn.Sequential(*_conv(3, width, 2), *_conv(width, width, 2), *_conv(width, width, 1))
    split = StreamSplit(width, setup.semantic_channels, setup.residual_channels, maps=True)
    outputs = {"segmentation": num_classes, "depth": 1}
    heads = {
        task: nn.Sequential(
            nn.Conv2d(setup.semantic_channels, out, 3, padding=1),
            nn.Upsample(scale_factor=4, mode="bilinear", align_corners=False),
        )
        for task, out in outputs.items()
    }
    decoder = SigmoidDecoder(
        setup.semantic_channels, setup.residual_channels, setup.decoder_width, 2
    )
    return DualStreamModel(encoder, split, heads, decoder)


@dataclass(frozen=True)
class Method:
    """One trained configuration: a balancer, or Equal Weighting plus the CORE-MTL terms."""

    name: str
    balancer: str = "ew"
    cka_weight: float = 0.0
    cfa_weight: float = 0.0
    cfa_probability: float = 0.5
    reconstruction_weight: float = 0.0

    @property
    def is_core(self) -> bool:
        return self.cka_weight > 0 or self.cfa_weight > 0 or self.reconstruction_weight > 0

    def weights(self) -> dict[str, float]:
        return {
            "cka": self.cka_weight,
            "cfa": self.cfa_weight,
            "cfa_probability": self.cfa_probability,
            "reconstruction": self.reconstruction_weight,
        }


def train(setup: ShortcutSetup, method: Method, data: dict, seed: int, device: str) -> nn.Module:
    """Train ``method`` on the source split ``data`` with the toolkit's trainer (in memory):
    Adam at a constant rate, ``epochs`` epochs of ``batch_size``; the initialisation is drawn
    from ``seed`` alone, so it is the same for every method."""
    from coremtl.balancers import make_balancer
    from coremtl.objective import CoreMTLObjective
    from coremtl.trainer import Trainer
    from experiments.synthetic.models import adam_settings
    from experiments.vision.losses import TASK_LOSSES

    torch.manual_seed(seed)
    model = build_model(setup, scene_config(setup, seed).num_classes)
    steps = setup.epochs * (data["image"].shape[0] // setup.batch_size)
    start = int(setup.independence_start * steps)
    objective = None
    if method.is_core:
        objective = CoreMTLObjective(
            cka_weight=method.cka_weight,
            cka_warmup_steps=start,
            cfa_weight=method.cfa_weight,
            cfa_probability=method.cfa_probability,
            cfa_start_step=start,
            reconstruction_weight=method.reconstruction_weight,
            cfa_mode="input",
            debiased_cka=True,
            input_key="image",
        )
    trainer = Trainer(
        model,
        {task: TASK_LOSSES[task] for task in TASKS},
        make_balancer(method.balancer, list(TASKS), device=device),
        adam_settings(
            setup.batch_size,
            setup.learning_rate,
            seed,
            device,
            epochs=setup.epochs,
            input_key="image",
        ),
        None,
        objective=objective,
    )
    trainer.fit({key: data[key] for key in ("image", *TASKS)})
    model.eval()
    return model


@torch.no_grad()
def task_metrics(model: nn.Module, data: dict, num_classes: int, device: str) -> dict:
    """mIoU, pixel accuracy, depth and normal errors over the whole split
    (:class:`experiments.vision.metrics.DenseMetrics`)."""
    from experiments.vision.metrics import DenseMetrics

    metrics = DenseMetrics(list(TASKS), num_classes, device)
    for start in range(0, data["image"].shape[0], 128):
        batch = {key: data[key][start : start + 128].to(device) for key in ("image", *TASKS)}
        metrics.update(model(batch["image"]).predictions, batch)
    return metrics.compute()


@torch.no_grad()
def pooled_streams(model: nn.Module, images: Tensor, device: str) -> tuple[Tensor, Tensor]:
    z_s, z_r = model.encode(images.to(device))
    return z_s.mean(dim=(2, 3)).cpu().double(), z_r.mean(dim=(2, 3)).cpu().double()


def linear_probe_accuracy(
    fit_features: Tensor, fit_labels: Tensor, eval_features: Tensor, eval_labels: Tensor
) -> float:
    """Held-out accuracy of a ridge-regression classifier of binary ``labels`` in ``{0, 1}``.

    Features are standardised with the fitting split's mean and standard deviation; the weights
    ``w = (X^T X + lambda n I)^{-1} X^T (2 y - 1)`` with an intercept column left unpenalised,
    ``lambda`` = :data:`PROBE_RIDGE`; the prediction is ``[x^T w > 0]``.
    """
    mean = fit_features.mean(dim=0)
    scale = fit_features.std(dim=0).clamp_min(1e-8)
    design = torch.cat(
        [(fit_features - mean) / scale, torch.ones(len(fit_features), 1, dtype=torch.float64)],
        dim=1,
    )
    penalty = PROBE_RIDGE * len(fit_features) * torch.eye(design.shape[1], dtype=torch.float64)
    penalty[-1, -1] = 0.0
    targets = 2.0 * fit_labels.double() - 1.0
    weights = torch.linalg.solve(design.T @ design + penalty, design.T @ targets)
    held_out = torch.cat(
        [(eval_features - mean) / scale, torch.ones(len(eval_features), 1, dtype=torch.float64)],
        dim=1,
    )
    predicted = (held_out @ weights > 0).to(eval_labels.dtype)
    return float((predicted == eval_labels).double().mean())


def hue_labels(data: dict, threshold: float) -> Tensor:
    """1 where the floor's albedo hue is above ``threshold`` (the fitting split's median)."""
    return (data["slot_hues"][:, FLOOR_SLOT] > threshold).long()


def stream_probes(model: nn.Module, probe_fit: dict, probe_eval: dict, device: str) -> dict:
    """Probe accuracy of the floor hue from pooled ``Z_s`` and from pooled ``Z_r``, and the
    debiased CKA of the pooled streams, on shortcut-free images (module docstring)."""
    from coremtl.cka import linear_cka

    threshold = float(probe_fit["slot_hues"][:, FLOOR_SLOT].median())
    fit_labels, eval_labels = hue_labels(probe_fit, threshold), hue_labels(probe_eval, threshold)
    fit_s, fit_r = pooled_streams(model, probe_fit["image"], device)
    eval_s, eval_r = pooled_streams(model, probe_eval["image"], device)
    return {
        "hue_probe_semantic": linear_probe_accuracy(fit_s, fit_labels, eval_s, eval_labels),
        "hue_probe_residual": linear_probe_accuracy(fit_r, fit_labels, eval_r, eval_labels),
        "stream_cka": float(linear_cka(eval_s.float(), eval_r.float(), debiased=True)),
    }


@torch.no_grad()
def counterfactual_transfer(model: nn.Module, data: dict, device: str) -> dict:
    """Does the decoder take colour from ``Z_r``? On shortcut-free images ``x_i`` with donor
    ``j = i - 1``, with ``f(x)`` the mean colour of ``x`` over the floor pixels of ``i``:

    - ``cfa_colour_shift = mean ||f(decode(Z_s(i), Z_r(j))) - f(decode(Z_s(i), Z_r(i)))|| /
      mean ||f(x_j) - f(x_i)||``: how far swapping ``Z_r`` moves the decoded floor colour, relative
      to how far the true colours differ (0: ``Z_r`` carries no colour, 1: all of it);
    - ``cfa_transfer``: the share of samples whose counterfactual floor colour is closer to
      ``f(x_j)`` than to ``f(x_i)`` (about 0.5 when the decoded colour is unrelated to both);
    - ``reconstruction_l1 = mean |decode(Z_s(i), Z_r(i)) - x_i|``.
    """
    images = data["image"].to(device)
    floor = (data["segmentation"] == FLOOR_SLOT).to(device, images.dtype)[:, None]
    z_s, z_r = model.encode(images)
    donor = torch.roll(torch.arange(images.shape[0], device=device), 1)
    counterfactual = model.decode(z_s, z_r[donor])
    reconstruction = model.decode(z_s, z_r)

    def floor_colour(x: Tensor) -> Tensor:
        return (x * floor).sum(dim=(2, 3)) / floor.sum(dim=(2, 3)).clamp_min(1.0)

    own = floor_colour(images)
    decoded = floor_colour(counterfactual)
    closer = (decoded - own[donor]).norm(dim=1) < (decoded - own).norm(dim=1)
    moved = (decoded - floor_colour(reconstruction)).norm(dim=1).mean()
    spread = (own[donor] - own).norm(dim=1).mean().clamp_min(1e-12)
    return {
        "cfa_colour_shift": float(moved / spread),
        "cfa_transfer": float(closer.double().mean()),
        "reconstruction_l1": float((reconstruction - images).abs().mean()),
    }
