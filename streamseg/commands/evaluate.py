"""``streamseg eval``: mIoU, per-class IoU and aAcc.

``streamseg eval DATA [--weights W]`` runs the model (same preprocessing as inference) on a
dataset folder (images/ + masks/) or a clip folder (video.mp4 + masks/);
``streamseg eval --pred DIR --gt DIR --num-classes N`` scores masks that already exist.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from streamseg.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", nargs="?", help="dataset folder (images/ + masks/) or clip folder (video.mp4 + masks/)")
    parser.add_argument("--weights", help="weights (default: the bundled demo model)")
    parser.add_argument("--model", help="SegNeXt size, if the weights do not say")
    parser.add_argument("--pred", help="folder of predicted masks (PNG class ids) to score instead of running a model")
    parser.add_argument("--gt", help="folder of ground-truth masks for --pred")
    parser.add_argument("--num-classes", type=int, help="class count for --pred/--gt")
    parser.add_argument("--precision", default="auto", help="engine precision (auto, fp32, bf16, fp16)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from streamseg.datasets import read_class_names
    from streamseg.evaluate import class_lines, evaluate, score_mask_folders

    if args.pred or args.gt:
        # a clip from `streamseg synth` keeps classes.json beside its masks/ folder
        names = read_class_names(Path(args.gt).parent) if args.gt else None
        num_classes = args.num_classes or (len(names) if names else None)
        if not (args.pred and args.gt and num_classes):
            raise ConfigError("--pred needs --gt and --num-classes (or a classes.json beside the --gt folder)")
        result = score_mask_folders(args.pred, args.gt, num_classes=num_classes)
        if names is None or len(names) != num_classes:
            names = [f"class_{i}" for i in range(num_classes)]
    else:
        if not args.data:
            raise ConfigError("give a DATA folder, or --pred DIR --gt DIR --num-classes N")
        from streamseg.engine import EngineConfig, Segmenter

        overrides = {"precision": args.precision}
        if args.weights:
            overrides["weights"] = args.weights
        if args.model:
            overrides["model"] = args.model
        seg = Segmenter(config=EngineConfig(**overrides))
        result = evaluate(args.data, segmenter=seg)
        names = list(seg.classes)
    per_class = {n: (None if v != v else round(v, 4)) for n, v in zip(names, result["iou"])}
    if args.json:
        print(json.dumps({"miou": result["miou"], "aacc": result["aacc"], "iou": per_class, "images": result["images"]}))
    else:
        print(f"mIoU {result['miou']:.4f}  aAcc {result['aacc']:.4f}  ({result['images']} images)")
        print("\n".join(class_lines(result, names)))
    return 0
