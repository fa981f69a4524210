"""``streamseg train CONFIG.yaml``: train SegNeXt (see ``configs/train_synth_segnext_t.yaml``)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from streamseg.config import apply_overrides, from_dict, load_yaml, parse_set


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="training config (YAML)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    parser.add_argument("--resume", action="store_true", help="continue from WORK_DIR/latest.pth")
    parser.add_argument("--export", metavar="OUT.safetensors", help="also write the final weights as fp16 safetensors")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _spin_wait_openmp() -> None:
    """Give torch's OpenMP threads their default spin-waiting back, if streamseg took it away.

    Training has no threads of ours competing for the cores, and sleeping between the
    thousands of small parallel regions of a training step costs more than it saves:
    2.9 s against 4.2 s per iteration (batch 8 at 384x384, 2-core CPU, one data worker).
    """
    import streamseg

    if streamseg._omp_policy_defaulted and "torch" not in sys.modules:
        os.environ.pop("OMP_WAIT_POLICY", None)


def run(args: argparse.Namespace) -> int:
    _spin_wait_openmp()
    from streamseg.training import TrainConfig, train
    from streamseg.training.loop import export_safetensors

    data = apply_overrides(load_yaml(args.config), parse_set(args.set))
    cfg = from_dict(TrainConfig, data)
    summary = train(cfg, resume=args.resume, progress=not args.no_progress)
    if args.export:
        summary["export"] = str(export_safetensors(summary["checkpoint"], args.export))
    print(json.dumps(summary))
    return 0
