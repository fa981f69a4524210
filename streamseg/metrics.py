"""Segmentation metrics from one accumulated confusion matrix.

Accumulating counts (not per-image scores) gives dataset-level IoU the way
segmentation benchmarks define it, and one ``np.bincount`` per update keeps it
cheap enough to run beside a live pipeline.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from streamseg.errors import InputError

__all__ = ["ConfusionMatrix"]


class ConfusionMatrix:
    """Counts of (target, prediction) pixel pairs; rows = target class, columns = predicted class.

    Pixels whose target equals ``ignore_index`` are skipped. Class ids outside
    ``[0, num_classes)`` elsewhere are an :class:`InputError` (they would
    silently corrupt the counts).
    """

    def __init__(self, num_classes: int, *, ignore_index: int = 255) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
            raise InputError(f"num_classes must be a positive integer, got {num_classes!r}")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def __repr__(self) -> str:
        return f"ConfusionMatrix(num_classes={self.num_classes}, ignore_index={self.ignore_index}, pixels={self.total})"

    @property
    def total(self) -> int:
        """Number of counted (non-ignored) pixels."""
        return int(self.matrix.sum())

    def reset(self) -> None:
        self.matrix[...] = 0

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        """Add one prediction/target pair of equal shape (integer class ids)."""
        pred, target = np.asarray(pred), np.asarray(target)
        if pred.shape != target.shape:
            raise InputError(
                f"prediction shape {pred.shape} != target shape {target.shape}: resize the prediction to the label's size first"
            )
        for name, arr in (("prediction", pred), ("target", target)):
            if arr.dtype.kind not in "iub":
                raise InputError(f"{name} must hold integer class ids, got dtype {arr.dtype}: pass the argmax, not scores")
        n = self.num_classes
        t = target.reshape(-1)
        p = pred.reshape(-1)
        keep = t != self.ignore_index
        if not keep.all():
            t, p = t[keep], p[keep]
        if t.size == 0:
            return
        t = t.astype(np.int64, copy=False)
        p = p.astype(np.int64, copy=False)
        for name, arr in (("target", t), ("prediction", p)):
            lo, hi = int(arr.min()), int(arr.max())
            if lo < 0 or hi >= n:
                bad = hi if hi >= n else lo
                raise InputError(
                    f"{name} holds class id {bad} outside [0, {n}) (ignore_index={self.ignore_index}): "
                    "check num_classes and the label encoding"
                )
        self.matrix += np.bincount(t * n + p, minlength=n * n).reshape(n, n)

    def merge(self, other: "ConfusionMatrix") -> None:
        """Add another matrix's counts (e.g. from a worker or another source)."""
        if other.num_classes != self.num_classes:
            raise InputError(f"cannot merge {other.num_classes}-class counts into {self.num_classes}-class counts")
        self.matrix += other.matrix

    def iou(self) -> np.ndarray:
        """Per-class intersection over union; NaN for classes absent from both target and prediction."""
        tp = np.diag(self.matrix).astype(np.float64)
        union = self.matrix.sum(0) + self.matrix.sum(1) - np.diag(self.matrix)
        out = np.full(self.num_classes, np.nan)
        np.divide(tp, union, out=out, where=union > 0)
        return out

    def miou(self) -> float:
        """Mean IoU over classes present in target or prediction (NaN if nothing was counted)."""
        return _nanmean(self.iou())

    def acc(self) -> np.ndarray:
        """Per-class accuracy (recall); NaN for classes absent from the target."""
        tp = np.diag(self.matrix).astype(np.float64)
        support = self.matrix.sum(1)
        out = np.full(self.num_classes, np.nan)
        np.divide(tp, support, out=out, where=support > 0)
        return out

    def macc(self) -> float:
        """Mean per-class accuracy over classes present in the target."""
        return _nanmean(self.acc())

    def aacc(self) -> float:
        """Overall pixel accuracy over non-ignored pixels (NaN if nothing was counted)."""
        total = self.total
        return float(np.trace(self.matrix) / total) if total else float("nan")

    def per_class(self, names: Sequence[str]) -> dict[str, float]:
        """``{class name: IoU}`` in class order."""
        if len(names) != self.num_classes:
            raise InputError(f"got {len(names)} class names for {self.num_classes} classes: pass one name per class")
        return {str(name): float(v) for name, v in zip(names, self.iou())}


def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")
