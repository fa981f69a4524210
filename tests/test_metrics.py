"""Confusion-matrix metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from streamseg.errors import InputError
from streamseg.metrics import ConfusionMatrix

TARGET = np.array([[0, 0, 1], [1, 2, 255]], np.uint8)
PRED = np.array([[0, 1, 1], [1, 0, 2]], np.uint8)


def test_hand_computed() -> None:
    cm = ConfusionMatrix(3)
    cm.update(PRED, TARGET)
    # counted pairs (target, pred): (0,0) (0,1) (1,1) (1,1) (2,0); the 255 pixel is skipped
    assert cm.matrix.dtype == np.int64
    assert cm.matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    # IoU: class 0: 1 / (2 + 2 - 1) = 1/3; class 1: 2 / (2 + 3 - 2) = 2/3; class 2: 0 / (1 + 0 - 0) = 0
    np.testing.assert_allclose(cm.iou(), [1 / 3, 2 / 3, 0.0])
    assert cm.miou() == pytest.approx(1 / 3)
    assert cm.aacc() == pytest.approx(3 / 5)
    np.testing.assert_allclose(cm.acc(), [0.5, 1.0, 0.0])
    assert cm.per_class(["a", "b", "c"]) == pytest.approx({"a": 1 / 3, "b": 2 / 3, "c": 0.0})
    assert cm.total == 5


def test_absent_class_is_nan_and_skipped_in_mean() -> None:
    cm = ConfusionMatrix(4, ignore_index=9)
    cm.update(np.array([0, 1, 1]), np.array([0, 1, 9]))
    iou = cm.iou()
    assert iou[0] == 1.0 and iou[1] == 1.0
    assert math.isnan(iou[2]) and math.isnan(iou[3])
    assert cm.miou() == 1.0
    assert cm.aacc() == 1.0


def test_accumulates_and_merges() -> None:
    a, b = ConfusionMatrix(3), ConfusionMatrix(3)
    a.update(PRED, TARGET)
    a.update(PRED, TARGET)
    b.update(PRED, TARGET)
    b.merge(b.__class__(3))
    b.merge(_copy(b))
    assert np.array_equal(a.matrix, b.matrix)
    assert a.matrix.sum() == 10
    a.reset()
    assert a.total == 0 and math.isnan(a.miou()) and math.isnan(a.aacc())


def _copy(cm: ConfusionMatrix) -> ConfusionMatrix:
    out = ConfusionMatrix(cm.num_classes)
    out.matrix += cm.matrix
    return out


def test_large_random_against_loop() -> None:
    rng = np.random.default_rng(0)
    target = rng.integers(0, 5, size=(40, 30)).astype(np.uint8)
    target[rng.random(target.shape) < 0.1] = 255
    pred = rng.integers(0, 5, size=(40, 30)).astype(np.int64)
    cm = ConfusionMatrix(5)
    cm.update(pred, target)
    expected = np.zeros((5, 5), np.int64)
    for t, p in zip(target.ravel(), pred.ravel()):
        if t != 255:
            expected[t, p] += 1
    assert np.array_equal(cm.matrix, expected)


def test_errors() -> None:
    cm = ConfusionMatrix(3)
    with pytest.raises(InputError, match="shape"):
        cm.update(np.zeros((2, 3), np.uint8), np.zeros((3, 2), np.uint8))
    with pytest.raises(InputError, match="class id 3"):
        cm.update(np.array([0, 3]), np.array([0, 1]))
    with pytest.raises(InputError, match="class id 7"):
        cm.update(np.array([0, 1]), np.array([0, 7]))
    with pytest.raises(InputError, match="integer"):
        cm.update(np.zeros(2, np.float32), np.zeros(2, np.uint8))
    with pytest.raises(InputError, match="names"):
        cm.per_class(["a"])
    with pytest.raises(InputError):
        ConfusionMatrix(0)
    assert cm.total == 0  # failed updates changed nothing
