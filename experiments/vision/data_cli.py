"""``coremtl data render``: write a split of rendered scenes in the ``.npy`` layout.
``coremtl data corrupt``: write Cityscapes-C (``<out>/<corruption>/<severity>/<i>.png``) from a
clean ``.npy`` split (:mod:`experiments.vision.datasets.cityscapes_c`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from coremtl.devices import DEVICE_TYPES, check_device


def parse_resolution(text: str) -> tuple[int, int]:
    """``"64"`` -> ``(64, 64)``, ``"48x64"`` -> ``(48, 64)`` (height x width)."""
    from scm.validation import InvalidParameterError

    parts = text.lower().split("x")
    try:
        values = tuple(int(part) for part in parts)
    except ValueError:
        raise InvalidParameterError(
            f"--resolution: expected N or HxW with positive integers, got {text!r}"
        ) from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) <= 0:
        raise InvalidParameterError(
            f"--resolution: expected N or HxW with positive integers, got {text!r}"
        )
    from experiments.vision.config import check_resolution

    check_resolution(list(values), "--resolution")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    render = actions.add_parser(
        "render", help="render a split of the scenes to <root>/<split>/{image,label,...}/<i>.npy"
    )
    render.add_argument("--root", type=Path, required=True, help="dataset root folder")
    render.add_argument("--split", default="train", help="split folder name (train, val, test)")
    render.add_argument("--n", type=int, required=True, help="number of samples")
    render.add_argument(
        "--resolution",
        default="64",
        help="N or HxW, multiples of 8 (the model's output stride; at least 8; default 64)",
    )
    render.add_argument("--env", default="source", choices=["source", "target"])
    render.add_argument("--shift", type=float, default=1.0, help="target shift size in [0, 1]")
    render.add_argument("--seed", type=int, default=0, help="generator seed")
    render.add_argument(
        "--shortcut",
        type=float,
        default=0.0,
        help="source-only probability that a class takes its own colour, in [0, 1]",
    )
    render.add_argument("--batch-size", type=int, default=32, help="samples rendered at once")
    render.add_argument("--overwrite", action="store_true", help="replace an existing split")
    render.add_argument("--device", default="cpu", help="torch device used for rendering")
    corrupt = actions.add_parser(
        "corrupt",
        help="write <out>/<corruption>/<severity>/<i>.png from a clean <root>/<split> .npy split "
        "(needs the imagecorruptions-imaug package)",
    )
    corrupt.add_argument("--root", type=Path, required=True, help="clean .npy dataset root")
    corrupt.add_argument("--out", type=Path, required=True, help="root of the corrupted tree")
    corrupt.add_argument("--split", default="val", help="clean split folder (default val)")
    corrupt.add_argument(
        "--corruptions",
        default="common",
        help="comma-separated names, or a subset: common (the 15 of Hendrycks & Dietterich), "
        "validation, noise, blur, weather, digital, all (default common)",
    )
    corrupt.add_argument(
        "--severities", default="1,2,3,4,5", help="comma-separated severities in 1..5"
    )
    corrupt.add_argument("--seed", type=int, default=0, help="seed of the random corruptions")
    corrupt.add_argument("--overwrite", action="store_true", help="replace existing folders")


def parse_severities(text: str) -> list[int]:
    """``"1,3"`` -> ``[1, 3]``."""
    from scm.validation import InvalidParameterError

    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InvalidParameterError(
            f"--severities: expected comma-separated integers in 1..5, got {text!r}"
        ) from None


def run_corrupt(args: argparse.Namespace) -> int:
    import sys

    from experiments.vision.datasets.cityscapes_c import corruption_names, write_corrupted_tree

    subsets = ("common", "validation", "noise", "blur", "weather", "digital", "all")
    try:
        if args.corruptions in subsets:
            names = corruption_names(args.corruptions)
        else:
            names = [name.strip() for name in args.corruptions.split(",") if name.strip()]
        folders = write_corrupted_tree(
            args.root,
            args.out,
            names,
            parse_severities(args.severities),
            seed=args.seed,
            split=args.split,
            overwrite=args.overwrite,
        )
    except ModuleNotFoundError as error:
        print(f"coremtl data corrupt: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {len(folders)} corruption/severity folders to {args.out}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.action == "corrupt":
        return run_corrupt(args)
    from experiments.vision.scenes import SceneConfig, make_environment, write_split
    from scm.validation import InvalidParameterError

    if args.n <= 0:
        raise InvalidParameterError(f"--n: expected a positive number of samples, got {args.n}")
    if args.seed < 0:
        raise InvalidParameterError(f"--seed: expected a non-negative integer, got {args.seed}")
    resolution = parse_resolution(args.resolution)
    device = check_device(args.device, "--device", DEVICE_TYPES, available=True)
    config = SceneConfig(resolution=resolution, seed=args.seed)
    environment = make_environment(args.env, shift=args.shift, shortcut=args.shortcut)
    folder = write_split(
        args.root,
        args.split,
        args.n,
        environment,
        config=config,
        batch_size=args.batch_size,
        overwrite=args.overwrite,
        device=device,
    )
    print(f"wrote {args.n} samples ({args.env}) to {folder}")
    return 0
