"""The ``coremtl`` command line.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``;
those modules import heavy dependencies inside ``run`` so that ``coremtl --help`` stays fast.
A bad input raises ``ValueError`` (or ``FileNotFoundError``); it is printed as one line and the
command exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "scm": ("scm.cli", "build an SCM of setting S and print its closed-form quantities"),
    "bench": ("coremtl.bench_cli", "run a benchmark and print its side-by-side ratios"),
    "prove": ("proofs.cli", "certify every statement of THEORY.md and print the verdict table"),
    "verify": ("experiments.verify", "run the proofs and the synthetic studies; figures + report"),
    "figures": ("experiments.figures_cli", "redraw the figures and report from a results file"),
    "data": ("experiments.vision.data_cli", "generate data sets (rendered scenes, Cityscapes-C)"),
    "train": ("experiments.vision.train_cli", "train a vision model from a YAML config"),
    "evaluate": ("experiments.vision.evaluate_cli", "metrics of a saved vision checkpoint"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coremtl",
        description="CORE-MTL: theory checks, the method library and its experiments.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args._run(args) or 0)
    except (ValueError, FileNotFoundError, NotADirectoryError) as error:
        print(f"coremtl {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"coremtl {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
