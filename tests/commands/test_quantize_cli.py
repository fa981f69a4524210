"""`streamseg quantize`: what it measured, and a folder that loads as weights (int8 on OpenVINO, float elsewhere)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from streamseg.engine import Segmenter
from streamseg.synth import SceneClip

pytest.importorskip("openvino", reason='optional backend: pip install "streamseg[openvino]" (CI installs it)')
pytest.importorskip("nncf", reason='int8 needs NNCF: pip install "streamseg[openvino]" (CI installs it)')
pytestmark = pytest.mark.timeout(300)


def test_quantize_reports_and_writes_a_folder_that_loads_as_weights(tmp_path, int8_cache, monkeypatch):
    env = dict(os.environ, STREAMSEG_CACHE=str(int8_cache))  # shared with tests/engine: quantized once per session
    out = subprocess.run(
        [sys.executable, "-m", "streamseg", "quantize", "--test-scale", "192x108", "--frames", "40",
         "--out", str(tmp_path / "q"), "--json"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["agreement"] >= 0.99 and report["held_out"] == 24 and report["weights"] == "segnext_t_synth"
    assert "int8 agrees with float on" in out.stdout
    monkeypatch.setenv("STREAMSEG_CACHE", str(tmp_path / "elsewhere"))  # the folder needs no cache and no calibration
    int8 = Segmenter(str(tmp_path / "q"), test_scale=(192, 108))
    assert int8.config.backend == "openvino" and int8.precision == "int8"
    floats = Segmenter(str(tmp_path / "q"), backend="torch", test_scale=(192, 108))
    assert floats.precision in ("fp32", "bf16") and floats.classes == int8.classes
    frame = SceneClip(seed=5, size=(320, 180)).frame(3)[0]
    assert (int8(frame) == floats(frame)).mean() > 0.97
    taken = subprocess.run([sys.executable, "-m", "streamseg", "quantize", "--out", str(tmp_path / "q")],
                           capture_output=True, text=True, env=env)  # fmt: skip
    assert taken.returncode == 2 and "not empty" in taken.stderr
