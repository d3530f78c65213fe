"""Exact ray casting of a batch of layouts through a pinhole camera: labels, depth and normals.

Frames: the world has ``y`` up and the ground at ``y = 0``; the camera frame has ``x`` right, ``y``
down and ``z`` forward (the NYUv2 / OpenCV convention). The camera sits at ``o = (0, h, 0)``
pitched down by ``theta``, so its axes in world coordinates are the columns of

    R = [e_x | (0, -cos theta, -sin theta) | (0, -sin theta, cos theta)]  (world from camera).

The ray through the centre of pixel ``(u, v)`` is ``d_cam = ((u + 1/2 - W/2) / f, (v + 1/2 - H/2)
/ f, 1)`` with ``f = (W / 2) / tan(fov / 2)``; it is *not* normalised, so a point ``o + t R d_cam``
has camera depth ``z = t`` and the depth map is the ray parameter of the nearest hit. Intersections
are closed-form: the plane ``t = -h / d_y``, spheres by the quadratic ``|o + t d - c|^2 = r^2``,
yawed boxes by the slab method in their local frame, vertical cylinders by the quadratic in ``(x, z)``
with a height test plus the top cap. Normals point out of the surface, are unit length, and are
returned in the camera frame. Each primitive is tested only on the pixels of a screen rectangle
that provably contains its image (:func:`_screen_rectangles`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .config import SHAPES, SceneConfig
from .layout import Layout

SPHERE, BOX, CYLINDER = (SHAPES.index(name) for name in ("sphere", "box", "cylinder"))


@dataclass(frozen=True)
class PinholeCamera:
    """A pinhole camera of ``height x width`` square pixels (see the module docstring)."""

    height: int
    width: int
    fov_deg: float
    elevation: float
    pitch_deg: float

    @classmethod
    def from_config(cls, config: SceneConfig) -> PinholeCamera:
        height, width = config.resolution
        return cls(height, width, config.fov_deg, config.camera_height, config.camera_pitch_deg)

    @property
    def focal(self) -> float:
        """Focal length in pixels, ``f = (W / 2) / tan(fov / 2)``."""
        return (self.width / 2) / math.tan(math.radians(self.fov_deg) / 2)

    def world_from_camera(self) -> np.ndarray:
        """The rotation ``R`` whose columns are the camera's right, down and forward axes."""
        theta = math.radians(self.pitch_deg)
        return np.array(
            [
                [1.0, 0.0, 0.0],
                [0.0, -math.cos(theta), -math.sin(theta)],
                [0.0, -math.sin(theta), math.cos(theta)],
            ]
        )

    def origin(self) -> np.ndarray:
        return np.array([0.0, self.elevation, 0.0])

    def camera_rays(self, device: torch.device | str, dtype: torch.dtype) -> Tensor:
        """``(H W, 3)`` ray directions in the camera frame with unit ``z`` component, row-major."""
        v, u = torch.meshgrid(
            torch.arange(self.height, device=device, dtype=dtype),
            torch.arange(self.width, device=device, dtype=dtype),
            indexing="ij",
        )
        x = (u + 0.5 - self.width / 2) / self.focal
        y = (v + 0.5 - self.height / 2) / self.focal
        return torch.stack([x, y, torch.ones_like(x)], dim=-1).reshape(-1, 3)


@dataclass(frozen=True)
class SurfaceHits:
    """The nearest surface along every ray of a batch: ``label (B, P)`` (-1 for sky or an
    unlabelled ground), ``depth (B, P)`` camera ``z`` (0 for sky), ``normal (B, P, 3)`` unit
    normals in the camera frame (0 for sky), ``points (B, P, 3)`` world hit points,
    ``surface (B, P)`` whether the ray hit anything within ``max_depth``, ``object_pixels`` the
    flat indices (into ``B * P``) of the pixels whose nearest surface is a primitive (the others
    are ground or sky) and ``ground_normal (3,)`` the ground's camera-frame normal."""

    label: Tensor
    depth: Tensor
    normal: Tensor
    points: Tensor
    surface: Tensor
    object_pixels: Tensor
    ground_normal: Tensor


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """``a . b`` over the last axis, summed in a fixed order (batch-size independent rounding)."""
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


def _to_local(vectors: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate by ``-yaw`` about ``y``: ``(x cos - z sin, y, x sin + z cos)``."""
    x, y, z = vectors.unbind(-1)
    x_local, z_local = x * cos - z * sin, x * sin + z * cos
    return torch.stack([x_local, y.expand_as(x_local), z_local], dim=-1)


def _to_world(vectors: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate by ``+yaw`` about ``y``, the inverse of :func:`_to_local`."""
    x, y, z = vectors.unbind(-1)
    x_world, z_world = x * cos + z * sin, -x * sin + z * cos
    return torch.stack([x_world, y.expand_as(x_world), z_world], dim=-1)


def _nonzero(values: Tensor) -> Tensor:
    tiny = torch.finfo(values.dtype).tiny ** 0.5
    return torch.where(values.abs() < tiny, torch.full_like(values, tiny), values)


def _sphere_t(origin: Tensor, rays: Tensor, centres: Tensor, half: Tensor) -> Tensor:
    """Smallest positive root of ``a t^2 + 2 b t + c = 0`` with ``a = |d|^2``, ``b = d . (o - c)``,
    ``c = |o - c|^2 - r^2``: ``t = (-b - sqrt(b^2 - a c)) / a``; ``inf`` on a miss."""
    offset = origin - centres
    a = _dot(rays, rays)
    b = _dot(rays, offset)
    c = _dot(offset, offset) - half[:, 0] ** 2
    disc = b * b - a * c
    t = (-b - disc.clamp_min(0).sqrt()) / a
    return torch.where((disc >= 0) & (t > 0), t, math.inf)


def _box_t(
    origin: Tensor, rays: Tensor, centres: Tensor, half: Tensor, cos: Tensor, sin: Tensor
) -> Tensor:
    """Slab method in the box frame: ``t_near = max_k min(t1_k, t2_k)``, ``t_far = min_k max(...)``
    with ``t{1,2}_k = (-/+ e_k - o_k) / d_k``; a hit when ``0 < t_near <= t_far``; ``cos, sin`` of
    the yaw."""
    local_origin = _to_local(origin - centres, cos, sin)
    local_rays = _nonzero(_to_local(rays, cos, sin))
    first = (-half - local_origin) / local_rays
    second = (half - local_origin) / local_rays
    near = torch.minimum(first, second).amax(-1)
    far = torch.maximum(first, second).amin(-1)
    return torch.where((near <= far) & (near > 0), near, math.inf)


def _cylinder_t(origin: Tensor, rays: Tensor, centres: Tensor, half: Tensor) -> Tensor:
    """Side: the quadratic of :func:`_sphere_t` in ``(x, z)`` with the hit's ``|y - c_y| <= h/2``;
    top cap: ``t = (c_y + h/2 - o_y) / d_y`` with ``(x, z)`` inside the radius; the nearest."""
    offset = origin - centres
    radius, top = half[:, 0], centres[:, 1] + half[:, 1]
    ray_x, ray_y, ray_z = rays.unbind(-1)
    offset_x, _, offset_z = offset.unbind(-1)
    a = ray_x * ray_x + ray_z * ray_z
    b = ray_x * offset_x + ray_z * offset_z
    c = offset_x * offset_x + offset_z * offset_z - radius * radius
    disc = b * b - a * c
    side = (-b - disc.clamp_min(0).sqrt()) / _nonzero(a)
    side_y = origin[1] + side * ray_y
    side_hit = (disc >= 0) & (side > 0) & (side_y >= centres[:, 1] - half[:, 1]) & (side_y <= top)
    cap = (top - origin[1]) / _nonzero(ray_y)
    cap_x = offset_x + cap * ray_x
    cap_z = offset_z + cap * ray_z
    cap_hit = (cap > 0) & (cap_x * cap_x + cap_z * cap_z <= radius * radius)
    return torch.minimum(torch.where(side_hit, side, math.inf), torch.where(cap_hit, cap, math.inf))


def _local_normals(local: Tensor, half: Tensor, shapes: Tensor) -> Tensor:
    """Outward unit normals in the primitive frame at local hit points ``local``.

    Sphere: ``q / |q|``; box: ``sign(q_k) e_k`` on the face ``k = argmax_k |q_k| / e_k``;
    cylinder: the cap ``(0, sign q_y, 0)`` when ``|q_y| / (h/2) > |q_xz| / r``, else
    ``(q_x, 0, q_z) / |q_xz|``.
    """
    sphere = local / local.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    ratios = local.abs() / half
    face = torch.nn.functional.one_hot(ratios.argmax(-1), 3).to(local.dtype)
    box = face * torch.sign(local)
    radial = local * torch.tensor([1.0, 0.0, 1.0], dtype=local.dtype, device=local.device)
    radial_length = radial.norm(dim=-1, keepdim=True)
    cap_side = ratios[:, 1:2] > radial_length / half[:, 0:1]
    up = torch.zeros_like(local)
    up[:, 1] = 1.0
    cylinder = torch.where(cap_side, up * torch.sign(local[:, 1:2]), radial / radial_length)
    shapes = shapes[:, None]
    return torch.where(shapes == SPHERE, sphere, torch.where(shapes == BOX, box, cylinder))


def _screen_rectangles(
    camera: PinholeCamera, centres: np.ndarray, half: np.ndarray, cos: np.ndarray, sin: np.ndarray
) -> np.ndarray:
    """``(J, 4)`` pixel rectangles ``[u0, u1) x [v0, v1)`` that contain each primitive's image.

    Every primitive lies in its yawed box ``c + R_y(yaw) [-e, e]`` (a sphere in its cube, a
    cylinder in its square prism); a perspective projection maps that convex box (when it lies in
    front of the camera) into the convex hull of its projected corners, so the bounding box of
    those corners, widened by a pixel, contains every pixel whose ray can hit the primitive. A box
    reaching behind the camera gets the whole image.
    """
    signs = np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1], indexing="ij")).reshape(3, -1).T
    local = signs[None] * half[:, None, :]
    x = local[..., 0] * cos[:, None] + local[..., 2] * sin[:, None]
    z = -local[..., 0] * sin[:, None] + local[..., 2] * cos[:, None]
    corners = centres[:, None, :] + np.stack([x, local[..., 1], z], axis=-1)
    camera_corners = (corners - camera.origin()) @ camera.world_from_camera()
    depth = camera_corners[..., 2]
    in_front = np.all(depth > 1e-6, axis=1)
    safe = np.where(depth > 1e-6, depth, 1.0)
    u = camera_corners[..., 0] / safe * camera.focal + camera.width / 2
    v = camera_corners[..., 1] / safe * camera.focal + camera.height / 2
    rectangles = np.stack(
        [
            np.floor(u.min(1)) - 1,
            np.ceil(u.max(1)) + 1,
            np.floor(v.min(1)) - 1,
            np.ceil(v.max(1)) + 1,
        ],
        axis=1,
    )
    full = np.array([0, camera.width, 0, camera.height], dtype=np.float64)
    rectangles = np.where(in_front[:, None], rectangles, full)
    rectangles[:, :2] = np.clip(rectangles[:, :2], 0, camera.width)
    rectangles[:, 2:] = np.clip(rectangles[:, 2:], 0, camera.height)
    return rectangles.astype(np.int64)


@dataclass(frozen=True)
class _ObjectTable:
    """Every primitive of a batch, one row each, grouped by shape. The yaw's cosine and sine come
    from the scalar C library (``math``), so they do not depend on the batch."""

    sample: np.ndarray
    class_ids: np.ndarray
    shapes: np.ndarray
    centres: np.ndarray
    half: np.ndarray
    yaws: np.ndarray

    @classmethod
    def from_layouts(cls, layouts: Sequence[Layout]) -> _ObjectTable:
        sample = np.concatenate(
            [np.full(len(layout), b, dtype=np.int64) for b, layout in enumerate(layouts)]
        )
        shapes = np.concatenate([layout.shapes for layout in layouts])
        order = np.argsort(shapes, kind="stable")
        return cls(
            sample=sample[order],
            class_ids=np.concatenate([layout.class_ids for layout in layouts])[order],
            shapes=shapes[order],
            centres=np.concatenate([layout.centres for layout in layouts])[order],
            half=np.concatenate([layout.half_sizes for layout in layouts])[order],
            yaws=np.concatenate([layout.yaws for layout in layouts])[order],
        )

    def yaw_cos_sin(self) -> tuple[np.ndarray, np.ndarray]:
        return (
            np.array([math.cos(yaw) for yaw in self.yaws]),
            np.array([math.sin(yaw) for yaw in self.yaws]),
        )


def _candidate_pairs(table: _ObjectTable, camera: PinholeCamera) -> tuple[np.ndarray, np.ndarray]:
    """``(object, pixel)`` pairs whose pixel lies in the object's screen rectangle."""
    rectangles = _screen_rectangles(camera, table.centres, table.half, *table.yaw_cos_sin())
    widths = rectangles[:, 1] - rectangles[:, 0]
    heights = rectangles[:, 3] - rectangles[:, 2]
    counts = np.clip(widths, 0, None) * np.clip(heights, 0, None)
    objects = np.repeat(np.arange(len(counts)), counts)
    offsets = np.arange(objects.size) - np.repeat(np.cumsum(counts) - counts, counts)
    safe_widths = np.maximum(widths, 1)[objects]
    u = rectangles[objects, 0] + offsets % safe_widths
    v = rectangles[objects, 2] + offsets // safe_widths
    return objects, v * camera.width + u


def cast_rays(
    layouts: Sequence[Layout],
    camera: PinholeCamera,
    max_depth: float,
    plane_class: int | None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> SurfaceHits:
    """Cast every pixel's ray against the ground and the primitives of each layout (module
    docstring) and keep the nearest hit with ``0 < t <= max_depth``.

    Work is restricted to the pixels of each primitive's screen rectangle
    (:func:`_screen_rectangles`); the nearest hit per pixel is an exact ``amin`` scatter, so a
    sample's maps do not depend on the other samples of the batch.
    """
    rotation, rays = _world_rays(camera, torch.device(device), dtype)
    origin = torch.as_tensor(camera.origin(), device=device, dtype=dtype)
    batch, pixels = len(layouts), rays.shape[0]
    ground = torch.where(rays[:, 1] < 0, -origin[1] / _nonzero(rays[:, 1]), math.inf)
    depth = ground.expand(batch, pixels).contiguous()
    table = _ObjectTable.from_layouts(layouts)
    objects_np, pixel_np = _candidate_pairs(table, camera)
    objects = torch.from_numpy(objects_np).to(device)
    pixel = torch.from_numpy(pixel_np).to(device)
    sample = torch.from_numpy(table.sample).to(device)
    centres = torch.from_numpy(table.centres).to(device=device, dtype=dtype)
    half = torch.from_numpy(table.half).to(device=device, dtype=dtype)
    yaw_cos, yaw_sin = (
        torch.from_numpy(values).to(device=device, dtype=dtype) for values in table.yaw_cos_sin()
    )
    pair_rays = rays[pixel]
    distance = torch.empty(pixel.shape[0], device=device, dtype=dtype)
    shape_of_pair = table.shapes[objects_np]
    for shape in (SPHERE, BOX, CYLINDER):
        rows = np.flatnonzero(shape_of_pair == shape)
        if rows.size == 0:
            continue
        part = slice(int(rows[0]), int(rows[-1]) + 1)
        owner = objects[part]
        if shape == SPHERE:
            distance[part] = _sphere_t(origin, pair_rays[part], centres[owner], half[owner])
        elif shape == BOX:
            distance[part] = _box_t(
                origin,
                pair_rays[part],
                centres[owner],
                half[owner],
                yaw_cos[owner],
                yaw_sin[owner],
            )
        else:
            distance[part] = _cylinder_t(origin, pair_rays[part], centres[owner], half[owner])
    flat_pixel = sample[objects] * pixels + pixel
    depth = depth.reshape(-1).scatter_reduce(0, flat_pixel, distance, reduce="amin")
    winner_of_pixel = torch.full((batch * pixels,), -1, dtype=torch.int64, device=device)
    wins = (distance == depth[flat_pixel]) & torch.isfinite(distance)
    winner_of_pixel = winner_of_pixel.scatter_reduce(
        0, flat_pixel[wins], objects[wins], reduce="amax"
    )
    surface = depth <= max_depth
    depth = torch.where(surface, depth, 0.0)
    points = origin + depth.reshape(batch, pixels, 1) * rays
    ground_normal = _to_camera_frame(
        torch.tensor([0.0, 1.0, 0.0], device=device, dtype=dtype), rotation
    )
    normal = ground_normal.expand(batch * pixels, 3).clone()
    ground_label = -1 if plane_class is None else plane_class
    label = torch.full((batch * pixels,), ground_label, dtype=torch.int64, device=device)
    hit = torch.nonzero((winner_of_pixel >= 0) & surface).squeeze(1)
    if hit.numel():
        owner = winner_of_pixel[hit]
        cos, sin = yaw_cos[owner], yaw_sin[owner]
        local = _to_local(points.reshape(-1, 3)[hit] - centres[owner], cos, sin)
        shapes = torch.from_numpy(table.shapes).to(device)[owner]
        world = _to_world(_local_normals(local, half[owner], shapes), cos, sin)
        normal[hit] = _to_camera_frame(world, rotation)
        label[hit] = torch.from_numpy(table.class_ids).to(device)[owner]
    normal = torch.where(surface[:, None], normal, 0.0)
    label = torch.where(surface, label, -1)
    return SurfaceHits(
        label=label.reshape(batch, pixels),
        depth=depth.reshape(batch, pixels),
        normal=normal.reshape(batch, pixels, 3),
        points=points,
        surface=surface.reshape(batch, pixels),
        object_pixels=hit,
        ground_normal=ground_normal,
    )


@functools.lru_cache(maxsize=8)
def _world_rays(
    camera: PinholeCamera, device: torch.device, dtype: torch.dtype
) -> tuple[Tensor, Tensor]:
    """``R`` and the ``(H W, 3)`` world-frame rays ``R d_cam`` of a camera (cached)."""
    rotation = torch.as_tensor(camera.world_from_camera(), device=device, dtype=dtype)
    return rotation, _to_world_frame(camera.camera_rays(device, dtype), rotation)


def _to_world_frame(vectors: Tensor, rotation: Tensor) -> Tensor:
    """``R v`` for camera-frame row vectors, as fixed-order products (no GEMM)."""
    return torch.stack([_dot(vectors, rotation[row]) for row in range(3)], dim=-1)


def _to_camera_frame(vectors: Tensor, rotation: Tensor) -> Tensor:
    """``R^T v`` for world-frame row vectors, as fixed-order products (no GEMM)."""
    return torch.stack([_dot(vectors, rotation[:, column]) for column in range(3)], dim=-1)
