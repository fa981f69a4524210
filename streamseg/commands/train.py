"""``streamseg train CONFIG.yaml``: train SegNeXt (see ``configs/train_synth_segnext_t.yaml``)."""

from __future__ import annotations

import argparse
import json

from streamseg.config import apply_overrides, from_dict, load_yaml, parse_set


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="training config (YAML)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    parser.add_argument("--resume", action="store_true", help="continue from WORK_DIR/latest.pth")
    parser.add_argument("--export", metavar="OUT.safetensors", help="also write the final weights as fp16 safetensors")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from streamseg.training import TrainConfig, train
    from streamseg.training.loop import export_safetensors

    data = apply_overrides(load_yaml(args.config), parse_set(args.set))
    cfg = from_dict(TrainConfig, data)
    summary = train(cfg, resume=args.resume, progress=not args.no_progress)
    if args.export:
        summary["export"] = str(export_safetensors(summary["checkpoint"], args.export))
    print(json.dumps(summary))
    return 0
