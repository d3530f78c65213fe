"""``coremtl data render``: write a split of rendered scenes in the ``.npy`` layout."""

from __future__ import annotations

import argparse
from pathlib import Path


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
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    render = actions.add_parser(
        "render", help="render a split of the scenes to <root>/<split>/{image,label,...}/<i>.npy"
    )
    render.add_argument("--root", type=Path, required=True, help="dataset root folder")
    render.add_argument("--split", default="train", help="split folder name (train, val, test)")
    render.add_argument("--n", type=int, required=True, help="number of samples")
    render.add_argument("--resolution", default="64", help="N or HxW (default 64)")
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


def run(args: argparse.Namespace) -> int:
    from experiments.vision.scenes import SceneConfig, make_environment, write_split
    from scm.validation import InvalidParameterError

    if args.n <= 0:
        raise InvalidParameterError(f"--n: expected a positive number of samples, got {args.n}")
    if args.seed < 0:
        raise InvalidParameterError(f"--seed: expected a non-negative integer, got {args.seed}")
    config = SceneConfig(resolution=parse_resolution(args.resolution), seed=args.seed)
    environment = make_environment(args.env, shift=args.shift, shortcut=args.shortcut)
    folder = write_split(
        args.root,
        args.split,
        args.n,
        environment,
        config=config,
        batch_size=args.batch_size,
        overwrite=args.overwrite,
        device=args.device,
    )
    print(f"wrote {args.n} samples ({args.env}) to {folder}")
    return 0
