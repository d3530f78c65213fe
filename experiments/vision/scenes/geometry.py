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

Layout of the work: the ground does not depend on the sample, so its depth, label, normal and hit
point are computed once per camera (:func:`_ground`) and copied into every sample; only the
``(primitive, pixel)`` pairs of the screen rectangles are intersected, and only the pixels a
primitive wins get a per-pixel normal. Vectors are kept as separate ``x, y, z`` planes
(structure of arrays), so every operation runs on contiguous memory.
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

Planes = tuple[Tensor, Tensor, Tensor]
"""A field of 3-vectors as its ``x, y, z`` components, each a tensor of the same shape."""


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
    """The nearest surface along every ray of a batch of ``B`` samples of ``P`` pixels.

    Maps: ``label (B, P)`` (-1 for sky or an unlabelled ground), ``depth (B, P)`` camera ``z``
    (0 for sky), ``normal_planes (3, B, P)`` unit camera-frame normals (0 for sky; :attr:`normal`
    is the ``(B, P, 3)`` view).

    The primitives' pixels (every other pixel is ground or sky): ``object_pixels (N,)`` their flat
    indices into ``B * P`` (each once, in no particular order), ``object_labels (N,)`` their
    classes, ``object_normals (3, N)`` camera-frame normals and ``object_points (3, N)`` world hit
    points.

    The ground, the same in every sample and shared by every batch of the camera (read-only):
    ``ground_points (3, P)`` world hit points (the camera origin where the ground is not hit),
    ``ground_sky (P,)`` the indices of the pixels whose ray misses the ground within ``max_depth``
    (sky unless a primitive covers them) and ``ground_normal (3,)`` its camera-frame normal.
    """

    label: Tensor
    depth: Tensor
    normal_planes: Tensor
    object_pixels: Tensor
    object_labels: Tensor
    object_normals: Tensor
    object_points: Tensor
    ground_points: Tensor
    ground_sky: Tensor
    ground_normal: Tensor

    @property
    def normal(self) -> Tensor:
        """``(B, P, 3)`` camera-frame normals (a view of :attr:`normal_planes`)."""
        return self.normal_planes.permute(1, 2, 0)

    @property
    def surface(self) -> Tensor:
        """``(B, P)`` whether the ray hit anything within ``max_depth`` (hits have ``z > 0``)."""
        return self.depth > 0


def _nonzero(values: Tensor) -> Tensor:
    tiny = torch.finfo(values.dtype).tiny ** 0.5
    return torch.where(values.abs() < tiny, torch.full_like(values, tiny), values)


def _rotate_to_local(x: Tensor, z: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor]:
    """Rotate by ``-yaw`` about ``y``: ``(x, z) -> (x cos - z sin, x sin + z cos)``."""
    return x * cos - z * sin, x * sin + z * cos


def _rotate_to_world(x: Tensor, z: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor]:
    """Rotate by ``+yaw`` about ``y``, the inverse of :func:`_rotate_to_local`."""
    return x * cos + z * sin, -x * sin + z * cos


def _row_dot(vector: Planes, row: Tensor) -> Tensor:
    """``v . row`` for a fixed 3-vector ``row``, summed in a fixed order (no GEMM), so every
    pixel's rounding is independent of the batch."""
    return vector[0] * row[0] + vector[1] * row[1] + vector[2] * row[2]


def _to_camera_frame(vector: Planes, rotation: Tensor) -> Planes:
    """``R^T v`` for world-frame vectors."""
    x, y, z = (_row_dot(vector, rotation[:, column]) for column in range(3))
    return x, y, z


@dataclass(frozen=True)
class _Ground:
    """Per-camera constants: world rays ``(3, P)`` and the per-pixel quantities the primitive
    tests reuse, and the ground's maps (see :class:`SurfaceHits`)."""

    origin: Tensor
    rotation: Tensor
    rays: Tensor
    rays_squared: Tensor
    rays_xz_squared: Tensor
    safe_ray_y: Tensor
    safe_rays_xz_squared: Tensor
    search_depth: Tensor
    depth: Tensor
    label: Tensor
    normal_planes: Tensor
    points: Tensor
    sky: Tensor
    normal: Tensor


@functools.lru_cache(maxsize=8)
def _ground(
    camera: PinholeCamera,
    max_depth: float,
    plane_class: int | None,
    device: torch.device,
    dtype: torch.dtype,
) -> _Ground:
    """The ground plane ``t = -h / d_y`` (for rays pointing down) of every pixel, cached per
    camera; ``search_depth`` is ``t`` within ``max_depth`` and ``inf`` beyond (sky)."""
    rotation = torch.as_tensor(camera.world_from_camera(), device=device, dtype=dtype)
    origin = torch.as_tensor(camera.origin(), device=device, dtype=dtype)
    camera_rays = camera.camera_rays(device, dtype).unbind(-1)
    rays = torch.stack([_row_dot(camera_rays, rotation[row]) for row in range(3)])
    ray_x, ray_y, ray_z = rays
    t = torch.where(ray_y < 0, -origin[1] / _nonzero(ray_y), math.inf)
    visible = t <= max_depth
    depth = torch.where(visible, t, 0.0)
    up = torch.tensor([0.0, 1.0, 0.0], device=device, dtype=dtype)
    normal = torch.stack(_to_camera_frame(up.unbind(), rotation))
    ground_label = -1 if plane_class is None else plane_class
    rays_xz_squared = ray_x * ray_x + ray_z * ray_z
    return _Ground(
        origin=origin,
        rotation=rotation,
        rays=rays.contiguous(),
        rays_squared=_row_dot(rays, rays),
        rays_xz_squared=rays_xz_squared,
        safe_ray_y=_nonzero(ray_y),
        safe_rays_xz_squared=_nonzero(rays_xz_squared),
        search_depth=torch.where(visible, t, math.inf),
        depth=depth,
        label=torch.where(visible, ground_label, -1),
        normal_planes=torch.where(visible, normal[:, None], 0.0).contiguous(),
        points=torch.stack([origin[k] + depth * rays[k] for k in range(3)]),
        sky=torch.nonzero(~visible).squeeze(1),
        normal=normal,
    )


def _per_sample(values: Tensor, batch: int) -> Tensor:
    """A new contiguous tensor holding ``values (..., P)`` once per sample: ``(..., B, P)``. Never
    a view, so writing into it leaves the cached ground untouched."""
    shape = (*values.shape[:-1], batch, values.shape[-1])
    return values.unsqueeze(-2).expand(shape).clone(memory_format=torch.contiguous_format)


def _sphere_t(ground: _Ground, pixel: Tensor, offset: Planes, c: Tensor) -> Tensor:
    """Smallest positive root of ``a t^2 + 2 b t + c = 0`` with ``a = |d|^2``, ``b = d . (o - c)``,
    ``c = |o - c|^2 - r^2``: ``t = (-b - sqrt(b^2 - a c)) / a``; ``inf`` on a miss. ``offset``
    and ``c`` are per pair; the ray terms are looked up by ``pixel``."""
    rays = ground.rays.index_select(1, pixel)
    a = ground.rays_squared.index_select(0, pixel)
    b = _row_dot(rays.unbind(), offset)
    disc = b * b - a * c
    t = (-b - disc.clamp_min(0).sqrt()) / a
    return torch.where((disc >= 0) & (t > 0), t, math.inf)


def _box_t(
    ground: _Ground, pixel: Tensor, lower: Planes, upper: Planes, cos: Tensor, sin: Tensor
) -> Tensor:
    """Slab method in the box frame: ``t_near = max_k min(t1_k, t2_k)``, ``t_far = min_k max(...)``
    with ``t1_k = (-e_k - o_k) / d_k`` (``lower``) and ``t2_k = (e_k - o_k) / d_k`` (``upper``), ``o``
    and ``d`` the origin and ray in the box frame; a hit when ``0 < t_near <= t_far``."""
    ray_x, ray_z = ground.rays[0].index_select(0, pixel), ground.rays[2].index_select(0, pixel)
    local_x, local_z = _rotate_to_local(ray_x, ray_z, cos, sin)
    local = (_nonzero(local_x), ground.safe_ray_y.index_select(0, pixel), _nonzero(local_z))
    near = far = None
    for k in range(3):
        first, second = lower[k] / local[k], upper[k] / local[k]
        entry, leave = torch.minimum(first, second), torch.maximum(first, second)
        near = entry if near is None else torch.maximum(near, entry)
        far = leave if far is None else torch.minimum(far, leave)
    return torch.where((near <= far) & (near > 0), near, math.inf)


def _cylinder_t(
    ground: _Ground,
    pixel: Tensor,
    offset: Planes,
    c: Tensor,
    radius: Tensor,
    bottom: Tensor,
    top: Tensor,
    cap_height: Tensor,
) -> Tensor:
    """Side: the quadratic of :func:`_sphere_t` in ``(x, z)`` with the hit's ``|y - c_y| <= h/2``;
    top cap: ``t = (c_y + h/2 - o_y) / d_y`` (``cap_height / d_y``) with ``(x, z)`` inside the
    radius; the nearest."""
    ray_x, ray_y, ray_z = ground.rays.index_select(1, pixel)
    offset_x, _, offset_z = offset
    a = ground.rays_xz_squared.index_select(0, pixel)
    b = ray_x * offset_x + ray_z * offset_z
    disc = b * b - a * c
    side = (-b - disc.clamp_min(0).sqrt()) / ground.safe_rays_xz_squared.index_select(0, pixel)
    side_y = ground.origin[1] + side * ray_y
    side_hit = (disc >= 0) & (side > 0) & (side_y >= bottom) & (side_y <= top)
    cap = cap_height / ground.safe_ray_y.index_select(0, pixel)
    cap_x = offset_x + cap * ray_x
    cap_z = offset_z + cap * ray_z
    cap_hit = (cap > 0) & (cap_x * cap_x + cap_z * cap_z <= radius * radius)
    return torch.minimum(torch.where(side_hit, side, math.inf), torch.where(cap_hit, cap, math.inf))


def _local_normals(local: Planes, half: Planes, shapes: Tensor) -> Planes:
    """Outward unit normals in the primitive frame at local hit points ``local``.

    Sphere: ``q / |q|``; box: ``sign(q_k) e_k`` on the face ``k = argmax_k |q_k| / e_k``;
    cylinder: the cap ``(0, sign q_y, 0)`` when ``|q_y| / (h/2) > |q_xz| / r``, else
    ``(q_x, 0, q_z) / |q_xz|``.
    """
    x, y, z = local
    zero = torch.zeros_like(x)
    length = torch.stack([x, y, z], dim=-1).norm(dim=-1).clamp_min(1e-12)
    radial_length = torch.stack([x, zero, z], dim=-1).norm(dim=-1)
    ratio_x, ratio_y, ratio_z = x.abs() / half[0], y.abs() / half[1], z.abs() / half[2]
    face_x = (ratio_x >= ratio_y) & (ratio_x >= ratio_z)
    face_y = ~face_x & (ratio_y >= ratio_z)
    face_z = ~face_x & ~face_y
    cap_side = ratio_y > radial_length / half[0]
    sphere, box = shapes == SPHERE, shapes == BOX

    def select(component: Tensor, on_face: Tensor, cylinder: Tensor) -> Tensor:
        box_value = torch.where(on_face, torch.sign(component), zero)
        return torch.where(sphere, component / length, torch.where(box, box_value, cylinder))

    return (
        select(x, face_x, torch.where(cap_side, zero, x / radial_length)),
        select(y, face_y, torch.where(cap_side, torch.sign(y), zero)),
        select(z, face_z, torch.where(cap_side, zero, z / radial_length)),
    )


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


def _pair_distances(
    table: _ObjectTable,
    objects_np: np.ndarray,
    pixel: Tensor,
    ground: _Ground,
    device: torch.device,
    dtype: torch.dtype,
) -> Tensor:
    """The ray parameter of every ``(object, pixel)`` pair (``inf`` on a miss). Terms that depend
    on the primitive only are computed once per primitive, then looked up per pair."""

    def tensor(values: np.ndarray) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray(values)).to(device=device, dtype=dtype)

    centres, half = tensor(table.centres.T), tensor(table.half.T)
    cos, sin = (tensor(values) for values in table.yaw_cos_sin())
    offset = tuple(ground.origin[k] - centres[k] for k in range(3))
    distance = torch.empty(pixel.shape[0], device=device, dtype=dtype)
    shape_of_pair = table.shapes[objects_np]
    for shape in (SPHERE, BOX, CYLINDER):
        rows = np.flatnonzero(shape_of_pair == shape)
        if rows.size == 0:
            continue
        part = slice(int(rows[0]), int(rows[-1]) + 1)
        owner = torch.from_numpy(objects_np[part]).to(device)

        def per_pair(values: Tensor, owner: Tensor = owner) -> Tensor:
            return values.index_select(0, owner)

        if shape == SPHERE:
            c = _row_dot(offset, offset) - half[0] ** 2
            distance[part] = _sphere_t(
                ground, pixel[part], tuple(per_pair(o) for o in offset), per_pair(c)
            )
        elif shape == BOX:
            local_x, local_z = _rotate_to_local(offset[0], offset[2], cos, sin)
            local = (local_x, offset[1], local_z)
            lower = tuple(per_pair(-half[k] - local[k]) for k in range(3))
            upper = tuple(per_pair(half[k] - local[k]) for k in range(3))
            distance[part] = _box_t(ground, pixel[part], lower, upper, per_pair(cos), per_pair(sin))
        else:
            radius, top = half[0], centres[1] + half[1]
            c = offset[0] * offset[0] + offset[2] * offset[2] - radius * radius
            distance[part] = _cylinder_t(
                ground,
                pixel[part],
                tuple(per_pair(o) for o in offset),
                per_pair(c),
                per_pair(radius),
                per_pair(centres[1] - half[1]),
                per_pair(top),
                per_pair(top - ground.origin[1]),
            )
    return distance


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
    device = torch.device(device)
    ground = _ground(camera, float(max_depth), plane_class, device, dtype)
    batch, pixels = len(layouts), ground.depth.shape[0]
    table = _ObjectTable.from_layouts(layouts)
    objects_np, pixel_np = _candidate_pairs(table, camera)
    pixel = torch.from_numpy(pixel_np).to(device)
    distance = _pair_distances(table, objects_np, pixel, ground, device, dtype)
    objects = torch.from_numpy(objects_np).to(device)
    sample = torch.from_numpy(table.sample).to(device)
    flat_pixel = sample.index_select(0, objects) * pixels + pixel
    nearest = _per_sample(ground.search_depth, batch).view(-1)
    nearest.scatter_reduce_(0, flat_pixel, distance, reduce="amin")
    wins = (distance == nearest.index_select(0, flat_pixel)) & (distance <= max_depth)
    winner = torch.full((batch * pixels,), -1, dtype=torch.int64, device=device)
    winner.scatter_reduce_(0, flat_pixel, torch.where(wins, objects, -1), reduce="amax")
    won = torch.nonzero(wins & (winner.index_select(0, flat_pixel) == objects)).squeeze(1)
    hit, owner = flat_pixel.index_select(0, won), objects.index_select(0, won)
    hit_depth = nearest.index_select(0, hit)
    rays = ground.rays.index_select(1, hit % pixels)
    points = torch.stack([ground.origin[k] + hit_depth * rays[k] for k in range(3)])

    def of_owner(values: np.ndarray) -> Tensor:
        column = torch.from_numpy(np.ascontiguousarray(values)).to(device)
        return column.to(dtype).index_select(0, owner)

    centres = [of_owner(table.centres[:, k]) for k in range(3)]
    half = [of_owner(table.half[:, k]) for k in range(3)]
    cos, sin = (of_owner(values) for values in table.yaw_cos_sin())
    relative = [points[k] - centres[k] for k in range(3)]
    local_x, local_z = _rotate_to_local(relative[0], relative[2], cos, sin)
    shapes = torch.from_numpy(table.shapes).to(device).index_select(0, owner)
    normal_x, normal_y, normal_z = _local_normals((local_x, relative[1], local_z), half, shapes)
    world_x, world_z = _rotate_to_world(normal_x, normal_z, cos, sin)
    object_normals = torch.stack(_to_camera_frame((world_x, normal_y, world_z), ground.rotation))
    object_labels = torch.from_numpy(table.class_ids).to(device).index_select(0, owner)
    depth = _per_sample(ground.depth, batch).view(-1)
    depth.index_copy_(0, hit, hit_depth)
    label = _per_sample(ground.label, batch).view(-1)
    label.index_copy_(0, hit, object_labels)
    normal_planes = _per_sample(ground.normal_planes, batch)
    normal_planes.view(3, -1).index_copy_(1, hit, object_normals)
    return SurfaceHits(
        label=label.reshape(batch, pixels),
        depth=depth.reshape(batch, pixels),
        normal_planes=normal_planes,
        object_pixels=hit,
        object_labels=object_labels,
        object_normals=object_normals,
        object_points=points,
        ground_points=ground.points,
        ground_sky=ground.sky,
        ground_normal=ground.normal,
    )
