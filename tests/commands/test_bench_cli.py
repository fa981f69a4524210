"""`streamseg bench` runs and reports what the README promises (numbers are not asserted: that is a benchmark)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from streamseg.model import build_segnext

pytestmark = pytest.mark.timeout(180)


def test_bench_json_with_baseline(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "w.pth"
    torch.save({"state_dict": build_segnext("segnext_t", num_classes=8).state_dict()}, path)
    out = subprocess.run(
        [sys.executable, "-m", "streamseg", "bench", "--model", "segnext_t", "--weights", str(path), "--size", "96x64",
         "--repeats", "2", "--warmup", "1", "--baseline", "--json"],
        capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("fps", "latency_ms", "baseline_fps", "speedup", "argmax_agreement", "precision", "device"):
        assert key in result
    assert result["fps"] > 0 and result["baseline_fps"] > 0
    assert result["speedup"] == pytest.approx(result["fps"] / result["baseline_fps"], rel=1e-2)
    assert 0.0 <= result["argmax_agreement"] <= 1.0
    assert "throughput" in out.stdout  # the table


def _bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamseg", "bench", *args], capture_output=True, text=True)


def test_backends_side_by_side_and_against_bare_openvino(tmp_path):
    pytest.importorskip("openvino")
    out = _bench("--size", "96x64", "--backend", "torch,openvino", "--repeats", "3", "--warmup", "1",
                 "--baseline", "--bare", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(result["backends"]) == {"torch", "openvino"}
    for r in result["backends"].values():
        assert r["baseline_fps"] == result["baseline_fps"]  # one baseline, timed once for both
        assert r["vs_bare_openvino"] == pytest.approx(r["fps"] / r["bare_openvino_fps"], rel=1e-2)
        assert 0.99 <= r["argmax_agreement"] <= 1.0
    assert result["fps"] == max(r["fps"] for r in result["backends"].values())  # top level: the fastest
    table = out.stdout
    assert "torch on cpu" in table and "openvino on cpu" in table and "vs bare" in table


def test_int8_refused_by_its_accuracy_check_says_how_bench_can_time_it_anyway(tmp_path, int8_cache):
    pytest.importorskip("nncf")
    grey = tmp_path / "grey"
    grey.mkdir()
    for i in range(20):  # a calibration set that covers nothing: the check refuses it
        (grey / f"{i:02d}.png").write_bytes(cv2.imencode(".png", np.full((64, 96, 3), 128, np.uint8))[1].tobytes())
    env = dict(os.environ, STREAMSEG_CACHE=str(int8_cache))  # the converted model is shared with the other int8 tests
    args = [sys.executable, "-m", "streamseg", "bench", "--size", "96x64", "--backend", "openvino", "--precision", "int8",
            "--calibration", str(grey), "--repeats", "2", "--warmup", "1", "--json"]  # fmt: skip
    refused = subprocess.run(args, capture_output=True, text=True, env=env)
    assert refused.returncode == 2 and "below the floor of 99.00 %" in refused.stderr
    assert "--accuracy-floor" in refused.stderr
    timed = subprocess.run([*args, "--accuracy-floor", "0.5"], capture_output=True, text=True, env=env)
    assert timed.returncode == 0, timed.stderr
    result = json.loads(timed.stdout.strip().splitlines()[-1])
    assert result["precision"] == "int8" and result["fps"] > 0


def test_unknown_backend_is_a_usage_error():
    out = _bench("--size", "64x64", "--backend", "torch,tensorrt")
    assert out.returncode == 2
    assert "tensorrt" in out.stderr and "torch, openvino, auto" in out.stderr
