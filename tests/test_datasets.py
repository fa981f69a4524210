"""How labelled data is read: the same rules for dataset folders, clip folders and the image source."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from streamseg.datasets import (
    folder_pairs,
    make_palette,
    mask_file_name,
    natural_key,
    read_class_names,
    read_image,
    read_mask,
)
from streamseg.errors import ConfigError, SourceError


def test_make_palette_is_distinct_and_deterministic() -> None:
    palette = make_palette(150)
    assert palette.shape == (150, 3) and palette.dtype == np.uint8
    assert len({tuple(c) for c in palette}) == 150
    np.testing.assert_array_equal(palette, make_palette(150))
    assert not np.array_equal(make_palette(10, seed=1), make_palette(10))
    # neighbouring ids differ clearly
    assert np.abs(palette[1:].astype(int) - palette[:-1].astype(int)).sum(1).min() > 60
    assert make_palette(0).shape == (0, 3)


def test_masks_grey_saved_as_rgb_is_fine_colour_is_not(tmp_path):
    ids = np.random.default_rng(0).integers(0, 7, (20, 30), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "grey.png"), ids)
    cv2.imwrite(str(tmp_path / "rgb.png"), np.dstack([ids] * 3))
    colour = np.dstack([ids, ids, ids + 1])
    cv2.imwrite(str(tmp_path / "colour.png"), colour)
    np.testing.assert_array_equal(read_mask(tmp_path / "grey.png"), ids)
    np.testing.assert_array_equal(read_mask(tmp_path / "rgb.png"), ids)
    with pytest.raises(ConfigError, match="colour image"):
        read_mask(tmp_path / "colour.png")
    wide = np.full((4, 4), 300, np.uint16)
    cv2.imwrite(str(tmp_path / "wide.png"), wide)
    assert read_mask(tmp_path / "wide.png").dtype == np.uint16
    with pytest.raises(ConfigError, match="cannot read mask"):
        read_mask(tmp_path / "missing.png")


def test_images_come_back_rgb_and_broken_files_are_named(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 200  # red
    cv2.imwrite(str(tmp_path / "red.png"), rgb[..., ::-1])
    np.testing.assert_array_equal(read_image(tmp_path / "red.png"), rgb)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(SourceError, match="cannot decode image .*broken.png"):
        read_image(tmp_path / "broken.png")


def test_dataset_folders_pair_by_stem_in_natural_order(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for name in ("img10", "img2", "img1"):
        cv2.imwrite(str(tmp_path / "images" / f"{name}.jpg"), np.zeros((4, 4, 3), np.uint8))
        cv2.imwrite(str(tmp_path / "masks" / f"{name}.png"), np.zeros((4, 4), np.uint8))
    assert [i.stem for i, _ in folder_pairs(tmp_path)] == ["img1", "img2", "img10"]
    (tmp_path / "images" / "img3.png").write_bytes(b"")
    with pytest.raises(ConfigError, match="no mask for img3.png"):
        folder_pairs(tmp_path)


def test_class_names_and_file_names(tmp_path):
    assert read_class_names(tmp_path) is None
    (tmp_path / "classes.json").write_text(json.dumps({"classes": ["bg", "cat"]}))
    assert read_class_names(tmp_path) == ["bg", "cat"]
    (tmp_path / "classes.json").write_text(json.dumps({"classes": []}))
    with pytest.raises(ConfigError, match="non-empty list"):
        read_class_names(tmp_path)
    assert mask_file_name(42) == "000042.png"
    assert sorted(["f10.png", "F2.png", "f1.png"], key=natural_key) == ["f1.png", "F2.png", "f10.png"]
