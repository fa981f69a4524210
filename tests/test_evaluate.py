"""`streamseg eval` on masks whose IoU is computed by hand."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest


def test_eval_pred_vs_gt_hand_computed(tmp_path):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir()
    pred.mkdir()
    g = np.zeros((4, 4), np.uint8)
    g[:, 2:] = 1  # class 1 = right half (8 px)
    g[0, 0] = 255  # ignored
    p = np.zeros((4, 4), np.uint8)
    p[:, 1:] = 1  # predicts 12 px of class 1
    cv2.imwrite(str(gt / "000000.png"), g)
    cv2.imwrite(str(pred / "000000.png"), p)
    out = subprocess.run(
        [sys.executable, "-m", "streamseg", "eval", "--pred", str(pred), "--gt", str(gt), "--num-classes", "2", "--json"],
        capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout.strip().splitlines()[-1])
    # counted pixels: 15 (one ignored). class 0: gt 7 px (col 0 minus ignored: 3, col 1: 4), pred 3 px (col 0 minus
    # ignored) -> intersection 3, union 7 -> 3/7. class 1: gt 8, pred 12 (all of cols 1-3) -> inter 8, union 12 -> 2/3.
    assert r["iou"]["class_0"] == round(3 / 7, 4)
    assert r["iou"]["class_1"] == round(2 / 3, 4)
    assert abs(r["miou"] - (3 / 7 + 2 / 3) / 2) < 1e-9
    assert abs(r["aacc"] - 11 / 15) < 1e-9


def test_eval_reports_a_lost_frame(tmp_path):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir()
    pred.mkdir()
    for i in range(3):
        cv2.imwrite(str(gt / f"{i:06d}.png"), np.zeros((4, 4), np.uint8))
    for i in range(2):
        cv2.imwrite(str(pred / f"{i:06d}.png"), np.zeros((4, 4), np.uint8))
    out = subprocess.run(
        [sys.executable, "-m", "streamseg", "eval", "--pred", str(pred), "--gt", str(gt), "--num-classes", "2"],
        capture_output=True, text=True,
    )
    assert out.returncode == 2 and "000002.png" in out.stderr


def test_eval_says_why_a_class_scores_zero_or_is_left_out(tmp_path):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir()
    pred.mkdir()
    g = np.zeros((4, 4), np.uint8)
    g[:, 2:] = 1
    p = g.copy()
    p[0, 0] = 2  # class 2 never in the ground truth: one stray pixel gives it IoU 0
    cv2.imwrite(str(gt / "000000.png"), g)
    cv2.imwrite(str(pred / "000000.png"), p)
    out = subprocess.run(
        [sys.executable, "-m", "streamseg", "eval", "--pred", str(pred), "--gt", str(gt), "--num-classes", "4"],
        capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines()[1:]}
    assert "not in the ground truth, yet predicted on 1 pixels" in lines["class_2"]
    assert "0.0000" in lines["class_2"]
    assert "left out of the mean" in lines["class_3"]
    assert lines["class_1"].split()[1] == "1.0000"
    # class 0: 8 gt px, 7 right; class 1: 8/8; class 2: 0; class 3 left out -> (7/8 + 1 + 0) / 3
    assert out.stdout.startswith(f"mIoU {(7 / 8 + 1 + 0) / 3:.4f}")


def test_eval_takes_class_names_from_the_clips_classes_json(tmp_path, capsys):
    from streamseg.cli import main

    clip, pred = tmp_path / "clip", tmp_path / "pred"
    (clip / "masks").mkdir(parents=True)
    pred.mkdir()
    g = np.zeros((4, 4), np.uint8)
    g[:, 2:] = 2
    cv2.imwrite(str(clip / "masks" / "000000.png"), g)
    cv2.imwrite(str(pred / "000000.png"), g)
    (clip / "classes.json").write_text(json.dumps({"classes": ["background", "cat", "dog"]}))
    assert main(["eval", "--pred", str(pred), "--gt", str(clip / "masks"), "--json"]) == 0  # no --num-classes
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert r["iou"] == {"background": 1.0, "cat": None, "dog": 1.0}

    (clip / "classes.json").write_text('{"labels": []}')
    assert main(["eval", "--pred", str(pred), "--gt", str(clip / "masks")]) == 2
    err = capsys.readouterr().err
    assert "classes.json" in err and '"classes"' in err


def test_eval_refuses_a_model_with_another_class_count_than_the_data(tmp_path, caplog):
    from streamseg.errors import ConfigError
    from streamseg.evaluate import evaluate

    from helpers import tiny_segmenter

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), np.full((32, 32, 3), 90, np.uint8))
    cv2.imwrite(str(tmp_path / "masks" / "a.png"), np.zeros((32, 32), np.uint8))
    seg = tiny_segmenter()  # 4 classes
    (tmp_path / "classes.json").write_text(json.dumps({"classes": ["background", "cat", "dog"]}))
    with pytest.raises(ConfigError, match=r"lists 3 classes but the model predicts 4"):
        evaluate(tmp_path, segmenter=seg)

    (tmp_path / "classes.json").write_text(json.dumps({"classes": ["background", "cat", "dog", "bird"]}))
    with caplog.at_level("WARNING", logger="streamseg.evaluate"):
        result = evaluate(tmp_path, segmenter=seg)
    assert result["images"] == 1 and "scores are by class id" in caplog.text
