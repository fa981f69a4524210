"""The ``streamseg`` command.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; the module is imported only when its subcommand runs, so
``streamseg --help`` stays fast. Exit codes: 0 done, 1 runtime failure,
2 bad configuration or usage, 130 interrupted (143 on SIGTERM).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from streamseg.errors import StreamsegError

# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("streamseg.commands.demo", "segment a generated clip with the bundled model and score it"),
    "run": ("streamseg.commands.run", "run a pipeline: sources -> engine -> sinks"),
    "bench": ("streamseg.commands.bench", "benchmark the engine (and optionally the pipeline)"),
    "quantize": ("streamseg.commands.quantize", "int8 for the OpenVINO backend, checked against float, ahead of time"),
    "synth": ("streamseg.synth.cli", "generate synthetic clips or datasets with ground truth"),
    "train": ("streamseg.commands.train", "train SegNeXt on a dataset folder or synthetic scenes"),
    "eval": ("streamseg.commands.evaluate", "mIoU / per-class IoU / aAcc of a model on labelled data"),
    "weights": ("streamseg.commands.weights", "list, show or download registered weights"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamseg",
        description="Real-time semantic segmentation of video streams with SegNeXt.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    from streamseg import __version__

    parser.add_argument("--version", action="version", version=f"streamseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # First pass: only global options and the subcommand name; the subcommand's
    # own parser (imported lazily) handles the rest.
    args, rest = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 2 if argv else 0
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    module_name, help_text = SUBCOMMANDS[args.command]
    module = importlib.import_module(module_name)
    sub_parser = argparse.ArgumentParser(prog=f"streamseg {args.command}", description=help_text)
    module.add_arguments(sub_parser)
    sub_args = sub_parser.parse_args(rest)
    try:
        return int(module.run(sub_args) or 0)
    except KeyboardInterrupt:
        print(f"streamseg {args.command}: interrupted", file=sys.stderr)
        return 130
    except StreamsegError as exc:  # exit 2: what the user asked for is wrong; 1: the run failed
        print(f"streamseg {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
