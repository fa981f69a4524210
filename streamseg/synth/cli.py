"""``streamseg synth``: write a synthetic clip (video + masks) or an image dataset with ground truth."""

from __future__ import annotations

import argparse
import logging
import re

from streamseg.errors import ConfigError

__all__ = ["add_arguments", "run", "parse_size"]

log = logging.getLogger(__name__)

_SIZE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def parse_size(text: str) -> tuple[int, int]:
    """``"640x360"`` -> ``(640, 360)``; anything else is a :class:`ConfigError` naming the expected form."""
    match = _SIZE.match(text or "")
    if not match or int(match.group(1)) == 0 or int(match.group(2)) == 0:
        raise ConfigError(f"--size must be WIDTHxHEIGHT with positive integers, e.g. 640x360; got {text!r}")
    return int(match.group(1)), int(match.group(2))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder (created if missing)")
    parser.add_argument("--frames", type=int, default=300, help="frames in the clip, or images with --dataset (default 300)")
    parser.add_argument("--seed", type=int, default=0, help="scene seed (default 0); same seed, same output")
    parser.add_argument("--size", default="640x360", help="WIDTHxHEIGHT (default 640x360; even sides for clips)")
    parser.add_argument("--fps", type=float, default=30.0, help="clip frame rate (default 30)")
    parser.add_argument("--crf", type=int, default=20, help="H.264 quality, lower is better (default 20)")
    parser.add_argument(
        "--dataset",
        action="store_true",
        help="write independent still images (images/ + masks/) instead of a clip",
    )


def run(args: argparse.Namespace) -> int:
    size = parse_size(args.size)
    if args.frames < 1:
        raise ConfigError(f"--frames must be at least 1, got {args.frames}")
    if args.seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {args.seed}")
    from streamseg.synth.io import write_clip, write_dataset

    if args.dataset:
        info = write_dataset(args.out, count=args.frames, seed=args.seed, size=size)
        print(f"wrote {info['count']} images {size[0]}x{size[1]} (seed {args.seed}) to {args.out}")
    else:
        if not 0 <= args.crf <= 51:
            raise ConfigError(f"--crf must be between 0 and 51, got {args.crf}")
        info = write_clip(args.out, frames=args.frames, seed=args.seed, size=size, fps=args.fps, crf=args.crf)
        print(f"wrote {info['frames']} frames {size[0]}x{size[1]} @ {args.fps:g} fps (seed {args.seed}) to {info['video']}")
    return 0
