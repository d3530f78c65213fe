"""The ``coremtl`` command line.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``.
Only the chosen subcommand's module is imported: ``coremtl --help`` lists the names and help strings
of :data:`SUBCOMMANDS` without importing any of them, and ``coremtl train --help`` imports the
train module alone. A bad input raises ``ValueError`` (or ``FileNotFoundError``); it is printed as
one line and the command exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "scm": ("scm.cli", "build an SCM of setting S and print its closed-form quantities"),
    "bench": ("coremtl_cli.bench", "run a benchmark and print its side-by-side ratios"),
    "prove": (
        "proofs.cli",
        "certify every statement of docs/THEORY.md and print the verdict table",
    ),
    "verify": ("experiments.verify", "run the proofs and the synthetic studies; figures + report"),
    "figures": ("experiments.figures_cli", "redraw the figures and report from a results file"),
    "data": ("experiments.vision.data_cli", "generate data sets (rendered scenes, Cityscapes-C)"),
    "train": ("experiments.vision.train_cli", "train a vision model from a YAML config"),
    "evaluate": ("experiments.vision.evaluate_cli", "metrics of a saved vision checkpoint"),
    "shortcuts": (
        "experiments.shortcuts_cli",
        "run the shortcut suite (study 9) on the benchmarks and methods you choose",
    ),
    "select-weights": (
        "experiments.select_weights_cli",
        "choose the default CORE-MTL weights on source validation of the rendered scenes",
    ),
}


def chosen_subcommand(argv: list[str]) -> str | None:
    """The subcommand named on the command line: the first argument not starting with ``-``.

    The top-level parser has no option taking a value, so that argument is the subcommand (or a
    misspelling of one, which the parser rejects).
    """
    for argument in argv:
        if not argument.startswith("-"):
            return argument if argument in SUBCOMMANDS else None
    return None


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """The parser with every subcommand listed; only ``chosen``'s module is imported to add its
    arguments and its ``run`` function."""
    parser = argparse.ArgumentParser(
        prog="coremtl",
        description="CORE-MTL: theory checks, the method library and its experiments.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(module_name)
            module.add_arguments(sub)
            sub.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(chosen_subcommand(argv))
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
