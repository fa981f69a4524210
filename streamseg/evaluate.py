"""Scoring masks against ground truth: folders of PNGs, datasets, and video + masks clips."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from streamseg.datasets import folder_pairs, mask_file_name, read_class_names, read_image, read_mask
from streamseg.errors import ConfigError
from streamseg.metrics import ConfusionMatrix

log = logging.getLogger(__name__)

__all__ = ["score_mask_folders", "evaluate", "class_lines"]


def _summary(cm: ConfusionMatrix, count: int) -> dict[str, Any]:
    return {
        "miou": cm.miou(),
        "aacc": cm.aacc(),
        "iou": cm.iou().tolist(),
        "gt_pixels": cm.matrix.sum(1).tolist(),
        "pred_pixels": cm.matrix.sum(0).tolist(),
        "images": count,
    }


def class_lines(result: dict[str, Any], names: list[str]) -> list[str]:
    """One line per class for people: its IoU, and why a class scores 0 or is left out of the mean.

    A class the ground truth never shows but the model predicts somewhere scores IoU 0 however few
    its pixels, which can weigh more in a short clip's mIoU than every other error together.
    """
    width = max(len(n) for n in names)
    lines = []
    for name, iou, gt, pred in zip(names, result["iou"], result["gt_pixels"], result["pred_pixels"]):
        if iou != iou:  # NaN: neither in the ground truth nor predicted
            lines.append(f"  {name:<{width}}  n/a     (not in the ground truth, never predicted: left out of the mean)")
        elif gt == 0:
            lines.append(f"  {name:<{width}}  {iou:.4f}  (not in the ground truth, yet predicted on {pred} pixels)")
        else:
            lines.append(f"  {name:<{width}}  {iou:.4f}")
    return lines


def score_mask_folders(pred_dir: str | Path, gt_dir: str | Path, *, num_classes: int, ignore_index: int = 255) -> dict[str, Any]:
    """mIoU of predicted PNG masks against ground-truth PNGs with the same names (every GT needs a prediction)."""
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    gts = sorted(gt_dir.glob("*.png"))
    if not gts:
        raise ConfigError(f"no ground-truth masks (*.png) in {gt_dir}")
    cm = ConfusionMatrix(num_classes, ignore_index=ignore_index)
    missing = [g.name for g in gts if not (pred_dir / g.name).exists()]
    if missing:
        raise ConfigError(f"{len(missing)} predictions missing in {pred_dir}, e.g. {missing[0]}: a frame was lost")
    for gt in gts:
        cm.update(read_mask(pred_dir / gt.name), read_mask(gt))
    return _summary(cm, len(gts))


def evaluate(data: str | Path, *, segmenter: Any, ignore_index: int = 255) -> dict[str, Any]:
    """Run ``segmenter`` on a dataset folder (images/ + masks/) or a clip folder (video.mp4 + masks/)."""
    data = Path(data)
    model_classes = list(segmenter.classes)
    names = read_class_names(data)
    if names is not None and len(names) != len(model_classes):
        raise ConfigError(
            f"{data / 'classes.json'} lists {len(names)} classes but the model predicts {len(model_classes)}: "
            "evaluate it with weights trained on these classes"
        )
    if names is not None and names != model_classes:
        log.warning("%s names the classes %s, the model %s: scores are by class id", data, names, model_classes)
    cm = ConfusionMatrix(len(model_classes), ignore_index=ignore_index)
    count = 0
    if (data / "images").is_dir():
        for image, mask in folder_pairs(data):
            cm.update(segmenter(read_image(image)), read_mask(mask))
            count += 1
        return _summary(cm, count)
    video = data / "video.mp4"
    if not video.exists() or not (data / "masks").is_dir():
        raise ConfigError(f"{data} must hold images/ + masks/ (a dataset) or video.mp4 + masks/ (a clip)")
    from streamseg.sources import open_source

    source = open_source(str(video))
    source.open()
    try:
        while (frame := source.read(timeout=10.0)) is not None:
            gt_path = data / "masks" / mask_file_name(frame.index)
            if not gt_path.exists():
                raise ConfigError(f"no ground truth for frame {frame.index}: expected {gt_path}")
            cm.update(segmenter(frame.image), read_mask(gt_path))
            count += 1
    finally:
        source.close()
    return _summary(cm, count)
