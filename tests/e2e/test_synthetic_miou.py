"""End to end against ground truth: a generated clip through the real pipeline with the bundled model.

The same harness must *fail* when the pipeline has the classic bugs: swapped colour channels,
masks attached to the wrong frame. These tests prove the check can catch them.
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


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    out = tmp_path_factory.mktemp("clip")
    write_clip(out, frames=FRAMES, seed=31337, size=(640, 360), fps=30)
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
    assert _miou([p.mask for p in predictions], gt) >= 0.85


def test_metric_collapses_with_swapped_channels(predictions, clip):
    """A pipeline that feeds BGR to the model: the harness must notice."""
    from streamseg.engine import Segmenter

    _, gt = clip
    seg = Segmenter()
    swapped = [seg(np.ascontiguousarray(p.frame.image[:, :, ::-1])) for p in predictions]
    good = _miou([p.mask for p in predictions], gt)
    bad = _miou(swapped, gt)
    assert bad < good - 0.15, (good, bad)


def test_metric_collapses_with_masks_one_frame_late(predictions, clip):
    """Masks attached to the wrong frame (off by one): the harness must notice."""
    _, gt = clip
    masks = [p.mask for p in predictions]
    good = _miou(masks, gt)
    shifted = _miou(masks[:-1], gt[1:])
    assert shifted < good - 0.05, (good, shifted)
