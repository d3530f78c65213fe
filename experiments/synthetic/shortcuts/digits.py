"""Two real handwritten digits per image, with a nuisance tied to the left digit's class.

**Digits.** scikit-learn's bundled ``load_digits`` (the UCI optical-recognition digits: 1,797
images of 8x8 pixels with 17 grey levels, 174 to 183 per class), read from the package's own data
folder; nothing is downloaded.

**Images** (MultiMNIST style, Sener & Koltun 2018, "Multi-Task Learning as Multi-Objective
Optimization"): one digit in each half of a 16x16 canvas, the two tasks ``left`` and ``right``
(10 classes each). The left digit's top-left corner is at row ``r_L`` in ``0..8`` and column
``c_L`` in ``{0, 1}``, the right one's at row ``r_R`` in ``0..8`` and column ``7 + {0, 1}``, all
drawn uniformly; where they overlap the brighter pixel wins (MultiMNIST's overlay). Why 16x16:
two 8x8 digits need 16 columns side by side, and the bitmaps' outer columns are nearly blank
(mean intensity 0.00 and 0.01 of 1), so the horizontal jitter of one pixel lets the digits touch
only there and both stay readable; the vertical jitter of 9 rows makes the tasks more than
template matching, and a three-stage CNN trains on thousands of such images in seconds on one
core. With ``a_L``, ``a_R`` the two digits' intensities in ``[0, 1]`` on the canvas, ``a`` their
maximum and ``c`` the left digit's colour (white unless the nuisance is colour), the image is
``x = max(a_L c, a_R) + (1 - a) * background`` (three channels), in ``[0, 1]``.

**Nuisance** (:data:`NUISANCES`, one per data set; its value ``v`` in ``0..9`` is returned per image
as ``nuisance``, and :data:`NUISANCE_DESCRIPTIONS` says what it does to the pixels): in the source
with strength ``p``, ``v = f(left)`` with probability ``p`` and ``v`` uniform on the 10 values
otherwise, where ``f`` names each value after the class it is tied to (``f(k) = k``), so
``P(v = left) = p + (1 - p) / 10``. The random target is the same law at ``p = 0``: ``v`` is
independent of both labels. The permuted target (Colored-Cityscapes') takes ``v = f(pi(left))``
on every image for a derangement ``pi`` of the classes drawn from the seed
(:func:`digit_derangement`), so reading the class from the nuisance is wrong on every image.

**Kinds.** ``colour`` paints the left digit in the hue ``v / 10``. Only the left digit: the
nuisance then lives on the task it is tied to; with both digits painted, a shortcut on ``left``
also cost EW 0.23 of ``right``'s accuracy (0.80 to 0.57 at ``p = 0.95``, 5 paired seeds, the fast
setting below), against 0.04 this way. ``texture`` lays a grey grating, ten orientation and
period pairs, under the whole canvas: a nuisance that is not colour and that also covers the
other task's half; its amplitude, 0.4 by default, leaves a digit's full ink (1) well above the
brightest background. ``position`` puts the left digit's corner at one of ten of its 18
placements, ``(2 (v mod 5), v // 5)``, whatever ``p`` (so its ``left`` task is a little easier than
with the other kinds).

**Splits.** The 1,797 digits are shuffled by the seed and cut into four disjoint pools
(:data:`SPLITS`, sizes :data:`POOL_SIZES` or given): a split draws both of its digits uniformly,
with replacement, from its own pool only, so no digit image is in both a training and an
evaluation split, while the number of images of a split is free (pairs and positions make them
distinct). A split is a function of ``(seed, split name)``: labels, digits, positions, texture
phases and the uniform nuisance draws are the same for every ``strength``, nuisance kind and
target, which changes only the nuisance (common random numbers, so such runs are paired).

**Suite.** :class:`DigitBenchmark` is one nuisance as a benchmark of the shortcut suite
(:data:`SUITE_SPLITS` maps the suite's split names onto the four pools).

**Calibration** (EW through :func:`coremtl.train`; backbone: three conv3x3-BN-ReLU stages of widths
16, 32, 32, each of stride 2, the heads pooling globally; AdamW at 2e-2, batch 128; 2,000 target
test images; one CPU thread). Fast setting, 3,000 training images for 12 epochs, about 3 s a run:
at ``p = 0`` (the target law, the calibration row) ``left`` reaches 0.82 to 0.92 on the random
target, and at ``p = 0.95`` it falls to 0.15 (colour), 0.22 (texture), 0.44 (position), while
``right`` loses 0.04, 0.09, 0.02 (5 paired seeds). Full setting, 6,000 images for 20 epochs,
about 9 s a run: ``left`` 0.93, 0.92, 0.96 at ``p = 0`` and 0.24, 0.41, 0.66 at ``p = 0.95``;
``right`` loses 0.02, 0.04, 0.02 (3 paired seeds).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import cache

import torch
from matplotlib.colors import hsv_to_rgb
from torch import Tensor, nn

from coremtl.counterfactual import derangement
from coremtl.tasks import Task
from scm.seeds import derive_seed
from scm.validation import InvalidParameterError, check_in_range, check_positive_int, check_seed

CLASSES = 10
TASKS = ("left", "right")
SIZE = 16
DIGIT = 8
ROWS = SIZE - DIGIT + 1
RIGHT_COLUMN = 7
SPLITS = ("source_train", "source_val", "target_val", "target_test")
POOL_SIZES: dict[str, int] = {
    "source_train": 1000,
    "source_val": 200,
    "target_val": 200,
    "target_test": 397,
}
TEXTURE_CONTRAST = 0.4
PALETTE = torch.tensor(
    hsv_to_rgb([[k / CLASSES, 1.0, 1.0] for k in range(CLASSES)]), dtype=torch.float32
)
"""Foreground colour of nuisance value ``k``: hue ``k / 10`` at full saturation and value."""
GRATINGS = torch.tensor([[math.pi * (k % 5) / 5, 4.0 if k < 5 else 8.0] for k in range(CLASSES)])
"""(orientation in radians, period in pixels) of the background grating of nuisance value ``k``."""
POSITIONS = torch.tensor([[2 * (k % 5), k // 5] for k in range(CLASSES)])
"""(row, column) of the left digit's top-left corner for nuisance value ``k``."""

NUISANCES = ("colour", "texture", "position")
NUISANCE_DESCRIPTIONS: dict[str, str] = {
    "colour": (
        "the left digit is painted in the hue v / 10 (HSV, full saturation and value), the right "
        "one stays white, on a black background; with the other nuisances both are white"
    ),
    "texture": (
        "the black background becomes a grey sinusoidal grating of amplitude "
        "`texture_contrast` (pixel values in [0, texture_contrast]), orientation 36 (v mod 5) "
        "degrees and period 4 pixels for v < 5, 8 pixels otherwise, at a uniformly random "
        "phase; the white digits are drawn over it"
    ),
    "position": (
        "the left digit's top-left corner is at row 2 (v mod 5) and column v // 5 of the "
        "canvas (ten of the 18 placements it otherwise takes uniformly)"
    ),
}


@cache
def digit_images() -> tuple[Tensor, Tensor]:
    """The 1,797 bundled digits: images ``(1797, 8, 8)`` float32 in ``[0, 1]`` and labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.as_tensor(digits.images, dtype=torch.float32) / 16.0
    return images, torch.as_tensor(digits.target, dtype=torch.long)


def _check_pool_sizes(pool_sizes: Mapping[str, int] | None) -> dict[str, int]:
    if pool_sizes is None:
        return dict(POOL_SIZES)
    if not isinstance(pool_sizes, Mapping) or set(pool_sizes) != set(SPLITS):
        raise InvalidParameterError(
            f"pool_sizes: expected a mapping with the keys {', '.join(SPLITS)}, got {pool_sizes!r}"
        )
    sizes = {name: check_positive_int(pool_sizes[name], f"pool_sizes[{name!r}]") for name in SPLITS}
    available = len(digit_images()[1])
    if sum(sizes.values()) > available:
        raise InvalidParameterError(
            f"pool_sizes: the four pools take {sum(sizes.values())} digits, more than the "
            f"{available} that load_digits holds"
        )
    return sizes


def digit_pools(seed: int = 0, pool_sizes: Mapping[str, int] | None = None) -> dict[str, Tensor]:
    """The indices into :func:`digit_images` of each split's pool: disjoint, drawn from ``seed``."""
    seed = check_seed(seed)
    sizes = _check_pool_sizes(pool_sizes)
    generator = torch.Generator().manual_seed(derive_seed(seed, "digit_pools"))
    order = torch.randperm(len(digit_images()[1]), generator=generator)
    ends = torch.tensor([sizes[name] for name in SPLITS]).cumsum(0).tolist()
    starts = [0, *ends[:-1]]
    return {name: order[a:b] for name, a, b in zip(SPLITS, starts, ends, strict=True)}


def digit_derangement(seed: int = 0) -> Tensor:
    """The permuted target's derangement ``pi`` of the 10 classes (``pi(k) != k``), from ``seed``."""
    generator = torch.Generator().manual_seed(derive_seed(check_seed(seed), "digit_derangement"))
    return derangement(CLASSES, generator)


def _ink(digits: Tensor, rows: Tensor, columns: Tensor) -> Tensor:
    """Canvases ``(n, 1, 16, 16)`` holding ``digits`` ``(n, 8, 8)`` at the given top-left corners."""
    canvas = torch.zeros(len(digits), SIZE, SIZE)
    offsets = torch.arange(DIGIT)
    image = torch.arange(len(digits))[:, None, None]
    r = (rows[:, None] + offsets)[:, :, None]
    c = (columns[:, None] + offsets)[:, None, :]
    canvas[image, r, c] = digits
    return canvas[:, None]


def _gratings(values: Tensor, phase: Tensor, contrast: float) -> Tensor:
    """Grey backgrounds ``(n, 16, 16)``: grating ``values`` (:data:`GRATINGS`) at ``phase``."""
    angle, period = GRATINGS[values].T
    grid = torch.arange(SIZE, dtype=torch.float32)
    along = (
        grid[None, None, :] * angle.cos()[:, None, None]
        + grid[None, :, None] * (angle.sin()[:, None, None])
    )
    wave = torch.cos(2 * math.pi * along / period[:, None, None] + phase[:, None, None])
    return contrast * 0.5 * (1.0 + wave)


def digits_split(
    split: str,
    n: int,
    nuisance: str,
    strength: float = 0.0,
    seed: int = 0,
    permuted: bool = False,
    pool_sizes: Mapping[str, int] | None = None,
    texture_contrast: float = TEXTURE_CONTRAST,
    stream: str | None = None,
) -> dict[str, Tensor]:
    """``n`` images of ``split`` (one of :data:`SPLITS`) with the ``nuisance`` of
    :data:`NUISANCES` tied to the left digit's class with probability ``strength``, to
    ``f(pi(left))`` instead of ``f(left)`` when ``permuted`` (module docstring).

    The source is ``strength = p``; the random target ``strength = 0``; the permuted target
    ``strength = 1, permuted = True``. ``stream`` names the random draws (default: ``split``),
    so that another set of images can be drawn from the same pool. Returns ``{"x": (n, 3, 16, 16)
    float32 in [0, 1], "left", "right", "nuisance": (n,) long}``."""
    if split not in SPLITS:
        raise InvalidParameterError(f"split: expected one of {', '.join(SPLITS)}, got {split!r}")
    if stream is not None and (not isinstance(stream, str) or not stream):
        raise InvalidParameterError(f"stream: expected a non-empty string, got {stream!r}")
    n = check_positive_int(n, "n")
    if nuisance not in NUISANCES:
        raise InvalidParameterError(
            f"nuisance: expected one of {', '.join(NUISANCES)}, got {nuisance!r}"
        )
    strength = check_in_range(strength, "strength", 0.0, 1.0)
    texture_contrast = check_in_range(texture_contrast, "texture_contrast", 0.0, 1.0)
    seed = check_seed(seed)
    pool = digit_pools(seed, pool_sizes)[split]
    images, labels = digit_images()
    generator = torch.Generator().manual_seed(derive_seed(seed, "digits", stream or split))

    def integers(high: int) -> Tensor:
        return torch.randint(high, (n,), generator=generator)

    left_digit, right_digit = pool[integers(len(pool))], pool[integers(len(pool))]
    left_row, left_column, right_row = integers(ROWS), integers(2), integers(ROWS)
    right_column = RIGHT_COLUMN + integers(2)
    tied = torch.rand(n, generator=generator) < strength
    free = integers(CLASSES)
    phase = 2 * math.pi * torch.rand(n, generator=generator)

    left, right = labels[left_digit], labels[right_digit]
    named = digit_derangement(seed)[left] if permuted else left
    value = torch.where(tied, named, free)
    if nuisance == "position":
        left_row, left_column = POSITIONS[value].T

    left_ink = _ink(images[left_digit], left_row, left_column)
    right_ink = _ink(images[right_digit], right_row, right_column)
    left_colour = torch.ones(n, 3, 1, 1)
    if nuisance == "colour":
        left_colour = PALETTE[value][:, :, None, None]
    background = torch.zeros(n, 1, SIZE, SIZE)
    if nuisance == "texture":
        background = _gratings(value, phase, texture_contrast)[:, None]
    ink = torch.maximum(left_ink, right_ink)
    x = torch.maximum(left_ink * left_colour, right_ink) + (1.0 - ink) * background
    return {"x": x.clamp(0.0, 1.0), "left": left, "right": right, "nuisance": value}


def digit_tasks() -> list[Task]:
    """The two tasks for :func:`coremtl.train`: ``left`` and ``right``, 10 classes each."""
    return [Task(name, "classification", outputs=CLASSES) for name in TASKS]


def nuisance_agreement(data: Mapping[str, Tensor], permutation: Tensor | None = None) -> float:
    """The share of images whose nuisance names the left digit's class, ``v = f(left)``, or
    ``v = f(permutation(left))`` when ``permutation`` is given. Its expectation is
    ``p + (1 - p) / 10`` in a source of strength ``p``, ``1 / 10`` in the random target, ``0``
    (against ``f``) and ``1`` (against ``f o pi``) in the permuted target."""
    left = data["left"]
    named = left if permutation is None else torch.as_tensor(permutation)[left]
    return float((data["nuisance"] == named).double().mean())


SUITE_SPLITS: dict[str, tuple[str, str]] = {
    "train": ("source_train", "source_train"),
    "source_val": ("source_val", "source_val"),
    "calibration_train": ("source_train", "source_train"),
    "calibration_source_val": ("source_val", "source_val"),
    "target_val": ("target_val", "target_val"),
    "permuted_val": ("target_val", "target_val"),
    "target_test": ("target_test", "target_test"),
    "permuted_test": ("target_test", "target_test"),
    "probe_fit": ("target_val", "probe_fit"),
    "probe_eval": ("target_test", "probe_eval"),
}
"""The shortcut suite's split names: ``(pool, stream)`` of each. The calibration row's splits are
the source's images under the target law (its nuisance drawn at random); the two targets of a
split share its stream (the same images but for the nuisance); the probes draw other images from
the target pools, so neither probe split holds a training digit."""


class DigitBenchmark:
    """One nuisance of this module as a benchmark of the shortcut suite: ``draw(seed, split, n,
    law)`` for a law of kind ``source`` (strength ``p``), ``target`` (random) or ``permuted``
    (strength of the permuted value), and the calibrated ``backbone(seed)`` (three conv3x3-BN-ReLU
    stages of widths 16, 32, 32, each of stride 2)."""

    shortcut_task = "left"
    metric = "left/accuracy"
    num_nuisance_values = CLASSES
    widths = (16, 32, 32)

    def __init__(self, nuisance: str) -> None:
        if nuisance not in NUISANCES:
            raise InvalidParameterError(
                f"nuisance: expected one of {', '.join(NUISANCES)}, got {nuisance!r}"
            )
        self.nuisance = nuisance
        self.key = f"digits/{nuisance}"
        self.tasks = tuple(digit_tasks())

    def permutation(self, seed: int) -> tuple[int, ...]:
        return tuple(digit_derangement(seed).tolist())

    def draw(self, seed: int, split: str, n: int, law) -> dict[str, Tensor]:
        if split not in SUITE_SPLITS:
            raise InvalidParameterError(
                f"split: expected one of {', '.join(SUITE_SPLITS)}, got {split!r}"
            )
        pool, stream = SUITE_SPLITS[split]
        strength = 0.0 if law.kind == "target" else law.strength
        permuted = law.kind == "permuted"
        return digits_split(pool, n, self.nuisance, strength, seed, permuted, stream=stream)

    def extra_probes(self, model: nn.Module, fit: dict, evaluate: dict) -> dict[str, float]:
        """None: the digits carry no truth beyond their labels and nuisance."""
        return {}

    def backbone(self, seed: int) -> nn.Sequential:
        torch.manual_seed(seed)
        stages, fan_in = [], 3
        for width in self.widths:
            conv = nn.Conv2d(fan_in, width, 3, stride=2, padding=1)
            stages.append(nn.Sequential(conv, nn.BatchNorm2d(width), nn.ReLU()))
            fan_in = width
        return nn.Sequential(*stages)
