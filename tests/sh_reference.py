"""The nine real spherical harmonics of order <= 2 written out as polynomials (Ramamoorthi &
Hanrahan 2001), an independent reference for ``coremtl.lighting.sh_basis``."""

import torch
from torch import Tensor


def reference_sh_basis(x: Tensor, y: Tensor, z: Tensor) -> Tensor:
    return torch.stack(
        [
            torch.full_like(x, 0.282095),
            0.488603 * y,
            0.488603 * z,
            0.488603 * x,
            1.092548 * x * y,
            1.092548 * y * z,
            0.315392 * (3 * z**2 - 1),
            1.092548 * x * z,
            0.546274 * (x**2 - y**2),
        ],
        dim=-1,
    )
