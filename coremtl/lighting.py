"""Order-2 spherical-harmonic (SH) lighting and Lambertian shading, and the sRGB transfer curve.

One lighting model shared by the scene renderer (``experiments/vision/scenes``) and the
hard-grounding decoder: the shading of a surface with unit normal ``N`` in colour channel ``c`` is

    S_c(N) = max(0, sum_{j=0}^{8} Y_j(N) L_{c,j}),

where ``Y_j`` are the nine real spherical harmonics of degree ``l <= 2``, orthonormal on the unit
sphere (``int Y_i Y_j dOmega = delta_ij``), with the constants of Ramamoorthi & Hanrahan, "An
Efficient Representation for Irradiance Environment Maps", SIGGRAPH 2001, eq. 3, ordered
``(l, m) = (0,0), (1,-1), (1,0), (1,1), (2,-2), (2,-1), (2,0), (2,1), (2,2)``:

    Y_0 = 0.282095
    Y_1 = 0.488603 y,    Y_2 = 0.488603 z,    Y_3 = 0.488603 x
    Y_4 = 1.092548 xy,   Y_5 = 1.092548 yz,   Y_6 = 0.315392 (3 z^2 - 1)
    Y_7 = 1.092548 xz,   Y_8 = 0.546274 (x^2 - y^2).

Normals are expressed in whatever frame the coefficients are (the toolkit uses the camera frame:
x right, y down, z forward). A Lambertian surface of linear albedo ``A`` then has linear radiance
``A * S`` (intrinsic-image convention: the BRDF's ``1/pi`` is folded into ``L``, so a white light of
unit strength facing the surface gives ``S = 1`` and a rendered pixel equal to its albedo).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from scm.validation import InvalidParameterError

SH_CONSTANTS = (0.282095, 0.488603, 1.092548, 0.315392, 0.546274)
"""Ramamoorthi & Hanrahan (2001) normalisation constants ``c_0 .. c_4`` (rounded to 6 digits)."""

SH_BAND_OF_COEFFICIENT = (0, 1, 1, 1, 2, 2, 2, 2, 2)
"""The degree ``l`` of each of the nine coefficients, in the order of :func:`sh_basis`."""

COSINE_LOBE_GAINS = (math.pi, 2.0 * math.pi / 3.0, math.pi / 4.0)
"""``A_l``: the clamped-cosine kernel's SH gains for ``l = 0, 1, 2`` (Ramamoorthi & Hanrahan)."""

SRGB_LINEAR_THRESHOLD = 0.0031308
SRGB_ENCODED_THRESHOLD = 0.04045


def sh_basis(normals: Tensor) -> Tensor:
    """The nine order-2 real SH ``Y_j(N)`` of the module docstring at every normal.

    ``normals``: ``(..., 3)`` unit vectors ``(x, y, z)``; returns ``(..., 9)``.
    """
    if normals.shape[-1] != 3:
        raise InvalidParameterError(
            f"normals: expected a last dimension of size 3, got shape {tuple(normals.shape)}"
        )
    x, y, z = normals.unbind(-1)
    c0, c1, c2, c3, c4 = SH_CONSTANTS
    return torch.stack(
        [
            torch.full_like(x, c0),
            c1 * y,
            c1 * z,
            c1 * x,
            c2 * x * y,
            c2 * y * z,
            c3 * (3.0 * z * z - 1.0),
            c2 * x * z,
            c4 * (x * x - y * y),
        ],
        dim=-1,
    )


def shade(normals: Tensor, coefficients: Tensor, channel_dim: int = -1) -> Tensor:
    """Per-channel shading ``S_c = max(0, Y(N) . L_c)``.

    ``normals``: ``(B, ..., 3, ...)`` with the 3 normal components along ``channel_dim``;
    ``coefficients``: ``(B, C, 9)`` (``C = 3`` colour channels in practice). Returns the shading
    with the ``C`` colour channels along ``channel_dim`` in place of the normal components, e.g.
    ``(B, H, W, 3)`` for ``channel_dim=-1`` or ``(B, 3, H, W)`` for ``channel_dim=1``. The sum
    over ``j`` runs in a fixed order, so a sample's shading does not depend on its batch; when a
    gradient is recorded, one ``einsum`` computes the same sum with less autograd memory.
    """
    if coefficients.ndim != 3 or coefficients.shape[-1] != 9:
        raise InvalidParameterError(
            f"coefficients: expected shape (B, C, 9), got {tuple(coefficients.shape)}"
        )
    if normals.shape[0] != coefficients.shape[0]:
        raise InvalidParameterError(
            f"normals and coefficients: batch sizes differ ({normals.shape[0]} and "
            f"{coefficients.shape[0]})"
        )
    basis = sh_basis(normals.movedim(channel_dim, -1))
    weights = coefficients.to(basis.dtype)
    if torch.is_grad_enabled() and (normals.requires_grad or coefficients.requires_grad):
        irradiance = torch.einsum("b...j,bcj->b...c", basis, weights)
        return irradiance.clamp_min(0.0).movedim(-1, channel_dim)
    weights = weights.reshape(weights.shape[0], *([1] * (basis.ndim - 2)), *weights.shape[1:])
    irradiance = basis[..., 0:1] * weights[..., 0]
    for j in range(1, 9):
        irradiance = irradiance + basis[..., j : j + 1] * weights[..., j]
    return irradiance.clamp_min(0.0).movedim(-1, channel_dim)


def directional_light_coefficients(
    direction: Tensor, colour: Tensor, ambient: Tensor | float = 0.0
) -> Tensor:
    """SH coefficients of the shading under a distant light plus a uniform ambient term.

    The target shading is ``colour_c max(0, N . d) + ambient_c`` for the unit ``direction`` d
    (pointing from the surface towards the light). The clamped cosine has the SH expansion
    ``max(0, N . d) = sum_j A_{l(j)} Y_j(d) Y_j(N)`` (Ramamoorthi & Hanrahan 2001, eqs. 8-9, with
    ``A_0 = pi``, ``A_1 = 2 pi / 3``, ``A_2 = pi / 4``, ``A_3 = 0``), so its order-2 truncation has
    ``L_{c,j} = colour_c A_{l(j)} Y_j(d) + ambient_c delta_{j0} / Y_0``. ``direction``: ``(B, 3)``
    (normalised here); ``colour``: ``(B, 3)``; ``ambient``: a float, ``(B,)`` or ``(B, 3)``.
    Returns ``(B, 3, 9)``.
    """
    unit = direction / direction.norm(dim=-1, keepdim=True)
    gains = torch.tensor(
        [COSINE_LOBE_GAINS[band] for band in SH_BAND_OF_COEFFICIENT],
        dtype=unit.dtype,
        device=unit.device,
    )
    lobe = sh_basis(unit) * gains
    coefficients = colour.to(unit.dtype).unsqueeze(-1) * lobe.unsqueeze(1)
    ambient = torch.as_tensor(ambient, dtype=unit.dtype, device=unit.device)
    ambient = ambient.reshape(-1, 1) if ambient.ndim == 1 else ambient
    constant = coefficients[..., 0] + ambient / SH_CONSTANTS[0]
    return torch.cat([constant.unsqueeze(-1), coefficients[..., 1:]], dim=-1)


def srgb_to_linear(encoded: Tensor) -> Tensor:
    """IEC 61966-2-1 sRGB decoding: ``c / 12.92`` for ``c <= 0.04045``, else
    ``((c + 0.055) / 1.055)^2.4``. Differentiable everywhere (the unused branch is clamped)."""
    curved = ((encoded.clamp_min(SRGB_ENCODED_THRESHOLD) + 0.055) / 1.055) ** 2.4
    return torch.where(encoded <= SRGB_ENCODED_THRESHOLD, encoded / 12.92, curved)


def linear_to_srgb(linear: Tensor) -> Tensor:
    """IEC 61966-2-1 sRGB encoding: ``12.92 l`` for ``l <= 0.0031308``, else
    ``1.055 l^(1/2.4) - 0.055``. Differentiable everywhere (the unused branch is clamped)."""
    curved = 1.055 * linear.clamp_min(SRGB_LINEAR_THRESHOLD) ** (1.0 / 2.4) - 0.055
    return torch.where(linear <= SRGB_LINEAR_THRESHOLD, linear * 12.92, curved)
