"""``streamseg weights``: list, show or download registered weights.

``download`` accepts anything ``--weights`` accepts elsewhere (a registered
name or a URL) and prints the local path, so scripts can pre-fetch files for
offline machines: ``cp "$(streamseg weights download segnext_t_ade20k)" ...``.
Unknown names raise WeightsNotFoundError (exit code 1), as they do in every
other command that takes weights.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p_list = sub.add_parser("list", help="registered weights, and whether each is on disk")
    p_list.add_argument("--variant", metavar="V", help="only weights for this model variant (e.g. segnext_t)")
    p_show = sub.add_parser("show", help="everything known about one registered name")
    p_show.add_argument("name")
    p_show.add_argument("--json", action="store_true", help="machine-readable output")
    p_down = sub.add_parser("download", help="fetch weights into the cache and print their path")
    p_down.add_argument("refs", nargs="+", metavar="NAME|URL")
    p_down.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        return _list(args.variant)
    if args.action == "show":
        return _show(args.name, as_json=args.json)
    return _download(args.refs, progress=not args.quiet)


def _list(variant: str | None) -> int:
    from streamseg.weights import get_weights, is_cached, list_weights

    rows = [("NAME", "VARIANT", "CLASSES", "DATASET", "CACHED")]
    for name in list_weights(variant):
        spec = get_weights(name)
        if spec.bundled is not None:
            cached = "bundled" if is_cached(spec) else "missing"
        else:
            cached = "yes" if is_cached(spec) else "no"
        classes = "backbone" if spec.backbone_only else str(spec.num_classes)
        rows.append((spec.name, spec.variant, classes, spec.dataset or "-", cached))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def _show(name: str, *, as_json: bool) -> int:
    from streamseg.weights import get_weights, is_cached, weights_path

    spec = get_weights(name)
    info: dict[str, Any] = asdict(spec)
    info["path"] = str(weights_path(spec))
    info["cached"] = is_cached(spec)
    if as_json:
        print(json.dumps(info, indent=2))
        return 0
    skip = {"classes", "palette", "name", "description"}
    print(spec.name + (f": {spec.description}" if spec.description else ""))
    for key, value in info.items():
        if key in skip or value in (None, ""):
            continue
        if isinstance(value, (tuple, list)):
            value = " ".join(str(v) for v in value)
        print(f"  {key + ':':<15}{value}")
    if spec.classes:
        print("  classes:")
        for i, (cls, rgb) in enumerate(zip(spec.classes, spec.palette)):
            print(f"    {i:3d}  {cls:<24}{rgb[0]:3d} {rgb[1]:3d} {rgb[2]:3d}")
    return 0


def _download(refs: list[str], *, progress: bool) -> int:
    from streamseg.weights import resolve_weights

    for ref in refs:
        path, _spec = resolve_weights(ref, progress=progress)
        print(path, flush=True)
    return 0
