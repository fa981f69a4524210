"""End to end against ground truth: a generated clip through the real pipeline with the bundled model.

Every frame comes back once, in order, with a mask scored against the clip's ground truth, and the
score is shown to catch the harness bugs it exists for: swapped colour channels and masks attached
to the neighbouring frame. The clip is a time-lapse (3 fps: 24 frames span 8 s), so objects move far
between frames and a one-frame shift costs what it would cost a real video at its own pace.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from streamseg.metrics import ConfusionMatrix
from streamseg.pipeline import Pipeline, PipelineConfig, SourceConfig
from streamseg.sinks.callback import CallbackSink
from streamseg.synth import CLASSES, write_clip

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

FRAMES = 24
# The issue asks 0.85; the bundled model of this version scores 0.91 on this clip (0.96 on the
# demo's 12 s clip; tests/commands/test_demo_cli.py holds that one to 0.90).
MIN_MIOU = 0.85


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    out = tmp_path_factory.mktemp("clip")
    write_clip(out, frames=FRAMES, seed=31337, size=(640, 360), fps=3)
    gt = [cv2.imread(str(out / "masks" / f"{i:06d}.png"), cv2.IMREAD_UNCHANGED) for i in range(FRAMES)]
    return out, gt


@pytest.fixture(scope="module")
def predictions(clip):
    out, _ = clip
    seen = []
    cfg = PipelineConfig(sources=[SourceConfig(uri=str(out / "video.mp4"))], batch_size=4, progress=False)
    stats = Pipeline(cfg, sinks=[CallbackSink(seen.append)]).run().as_dict()
    assert stats["frames_in"] == stats["frames_out"] == FRAMES
    return seen


def _miou(masks, gts) -> float:
    cm = ConfusionMatrix(len(CLASSES))
    for m, g in zip(masks, gts):
        cm.update(m, g)
    return cm.miou()


def test_pipeline_reaches_miou(predictions, clip):
    _, gt = clip
    assert [p.frame.index for p in predictions] == list(range(FRAMES))
    assert _miou([p.mask for p in predictions], gt) >= MIN_MIOU


def test_swapped_colour_channels_collapse_the_score(predictions, clip):
    from streamseg.engine import Segmenter

    _, gt = clip
    seg = Segmenter()
    bgr = [np.ascontiguousarray(p.frame.image[:, :, ::-1]) for p in predictions]  # a harness that forgot RGB
    swapped = [p.mask for p in seg.segment(bgr)]
    assert _miou(swapped, gt) < 0.6 * _miou([p.mask for p in predictions], gt)


@pytest.mark.parametrize("shift", [1, -1])
def test_masks_one_frame_off_collapse_the_score(predictions, clip, shift):
    _, gt = clip
    masks = [p.mask for p in predictions]
    right = _miou(masks, gt)
    off = _miou(masks[1:], gt[:-1]) if shift == 1 else _miou(masks[:-1], gt[1:])
    assert off < 0.6 * right
