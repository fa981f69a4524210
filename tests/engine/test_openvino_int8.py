"""int8 on OpenVINO: quantized once and cached, checked against float, refused when it is measurably worse."""

from __future__ import annotations

import logging
import re
import sys

import cv2
import numpy as np
import pytest

from streamseg.engine import Segmenter
from streamseg.engine.segmenter import resolve_backend
from streamseg.engine.config import EngineConfig
from streamseg.errors import ConfigError, QuantizationError
from streamseg.synth import SceneClip

pytest.importorskip("openvino", reason='optional backend: pip install "streamseg[openvino]" (CI installs it)')
pytest.importorskip("nncf", reason='int8 needs NNCF: pip install "streamseg[openvino]" (CI installs it)')
pytestmark = pytest.mark.timeout(300)

SCALE = (192, 108)  # small frames: quantization here takes seconds


@pytest.fixture
def cache(int8_cache, monkeypatch):
    monkeypatch.setenv("STREAMSEG_CACHE", str(int8_cache))
    return int8_cache


def _int8(**options) -> Segmenter:
    return Segmenter(backend="openvino", precision="int8", test_scale=SCALE, calibration_frames=40, **options)


def test_quantized_once_then_reused_from_the_cache(cache, caplog):
    first = _int8()
    report = first.executor.forward.int8.report
    assert report.held_out == 8 + 16 and report.scenes == 16 and report.calibrated_on == 32
    assert report.agreement == min(report.frames_agreement, report.scenes_agreement) >= 0.99
    frames = [SceneClip(seed=4711, size=(320, 180)).frame(i)[0] for i in range(0, 40, 10)]
    masks = [first(f) for f in frames]
    with caplog.at_level(logging.INFO, logger="streamseg.engine"):
        again = _int8()
    assert again.executor.forward.int8.report.cached and "quantizing to int8" not in caplog.text
    for frame, mask in zip(frames, masks):
        np.testing.assert_array_equal(again(frame), mask)  # the same quantized graph, not a new draw
    fp32 = Segmenter(backend="torch", precision="fp32", test_scale=SCALE)
    agreement = np.mean([(fp32(f) == m).mean() for f, m in zip(frames, masks)])
    assert agreement >= 0.98, agreement  # full-size masks, against torch fp32


def test_a_calibration_set_that_covers_nothing_is_refused(cache, tmp_path):
    grey = tmp_path / "grey"
    grey.mkdir()
    for i in range(40):
        cv2.imwrite(str(grey / f"{i:03d}.png"), np.full((108, 192, 3), 128, np.uint8))
    kept = set((cache / "openvino" / "int8").glob("*/meta.json"))
    with pytest.raises(QuantizationError, match=r"agrees with the float model on .* % .*below the floor of 99.00 %") as info:
        _int8(calibration=str(grey))
    message = str(info.value)
    assert "engine.calibration" in message and "accuracy_floor" in message and "bf16 or fp32" in message
    assert info.value.exit_code == 2
    assert set((cache / "openvino" / "int8").glob("*/meta.json")) == kept  # nothing refused is kept


def test_a_black_start_up_is_refused_however_many_frames_it_gives(cache, tmp_path):
    """300 black frames (a camera's start-up, say): their held-out fifth agrees with itself, the scenes do not."""
    black = tmp_path / "black"
    black.mkdir()
    for i in range(300):
        cv2.imwrite(str(black / f"{i:03d}.png"), np.zeros((108, 192, 3), np.uint8))
    with pytest.raises(QuantizationError, match=r"generated scenes never calibrated on: \d+\.\d+ % of 16") as info:
        Segmenter(backend="openvino", precision="int8", test_scale=SCALE, calibration=str(black))
    frames, scenes = (float(v) for v in re.findall(r": (\d+\.\d+) % of", str(info.value)))
    assert frames > 99.0 > scenes  # pooled over 60 + 16 frames, this passed the floor


def test_too_few_calibration_frames_say_what_to_do(cache, tmp_path):
    few = tmp_path / "few"
    few.mkdir()
    for i in range(5):
        cv2.imwrite(str(few / f"{i:03d}.png"), SceneClip(seed=3, size=(192, 108)).frame(i)[0][:, :, ::-1])
    with pytest.raises(ConfigError, match=r"gave 5 frames; int8 calibration needs at least 16: .*engine.calibration"):
        _int8(calibration=str(few))


def test_auto_picks_openvino_on_a_cpu_where_it_is_installed(monkeypatch):
    cpu = EngineConfig(device="cpu")
    assert EngineConfig().backend == "auto" and resolve_backend(cpu).backend == "openvino"
    monkeypatch.setitem(sys.modules, "openvino", None)  # what `import openvino` meets when it is not installed
    assert resolve_backend(cpu).backend == "torch"
    assert resolve_backend(EngineConfig(device="cpu", backend="torch")).backend == "torch"
