"""Ray Data: map_batches(Segment, ...) over read_images of a generated folder equals the Segmenter on the same images."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import scene

from streamseg.engine import EngineConfig, Segmenter
from streamseg.ray import Segment

pytestmark = pytest.mark.slow


def test_map_batches_adds_masks_equal_to_the_segmenter(tmp_path: Path, local_ray, engine_options) -> None:
    images = [scene(48, 64, seed=s) for s in range(6)]
    for i, image in enumerate(images):
        cv2.imwrite(str(tmp_path / f"{i:02d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    ds = local_ray.data.read_images(str(tmp_path), include_paths=True, mode="RGB")
    out = ds.map_batches(Segment, fn_constructor_kwargs={**engine_options, "overlay": True}, concurrency=1,
                         batch_size=4, num_cpus=1).take_all()  # fmt: skip
    rows = {Path(r["path"]).name: r for r in out}
    seg = Segmenter(config=EngineConfig(**engine_options))
    assert len(rows) == 6
    for i, image in enumerate(images):
        row = rows[f"{i:02d}.png"]
        np.testing.assert_array_equal(row["image"], image)
        np.testing.assert_array_equal(row["mask"], seg(image))
        assert row["overlay"].shape == image.shape


def test_frames_of_different_sizes_in_one_dataset(tmp_path: Path, local_ray, engine_options) -> None:
    sizes = [(48, 64), (40, 56), (48, 64), (32, 32)]
    images = [scene(h, w, seed=i) for i, (h, w) in enumerate(sizes)]
    for i, image in enumerate(images):
        cv2.imwrite(str(tmp_path / f"{i:02d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    ds = local_ray.data.read_images(str(tmp_path), include_paths=True, mode="RGB")
    out = ds.map_batches(Segment, fn_constructor_kwargs=engine_options, concurrency=1, batch_size=4, num_cpus=1).take_all()
    seg = Segmenter(config=EngineConfig(**engine_options))
    rows = {Path(r["path"]).name: r for r in out}
    for i, image in enumerate(images):
        np.testing.assert_array_equal(rows[f"{i:02d}.png"]["mask"], seg(image))


def test_a_missing_column_is_named(local_ray, engine_options) -> None:
    from streamseg.errors import InputError

    with pytest.raises(InputError, match="no column 'frame'"):
        Segment(column="frame", **engine_options)({"image": np.zeros((1, 8, 8, 3), np.uint8)})
