"""streamseg.draw: palette lookup, blending, legend and palettes on real arrays."""

from __future__ import annotations

import time

import numpy as np
import pytest

from streamseg.draw import (
    MODES,
    colorize,
    draw_legend,
    overlay,
    present_classes,
    render,
    side_by_side,
)
from streamseg.datasets import make_palette
from streamseg.errors import InputError

PALETTE = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)


def test_colorize_looks_up_every_pixel() -> None:
    mask = np.array([[0, 1], [2, 3]], np.uint8)
    out = colorize(mask, PALETTE)
    assert out.dtype == np.uint8 and out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out.reshape(4, 3), PALETTE)


def test_colorize_ids_beyond_palette_are_black() -> None:
    mask = np.array([[1, 4, 200]], np.uint8)
    out = colorize(mask, PALETTE)
    np.testing.assert_array_equal(out[0], [[255, 0, 0], [0, 0, 0], [0, 0, 0]])


def test_colorize_uint16_mask_with_many_classes() -> None:
    palette = make_palette(300)
    mask = np.array([[0, 255, 256, 299, 300, 65535]], np.uint16)
    out = colorize(mask, palette)
    np.testing.assert_array_equal(out[0, :4], palette[[0, 255, 256, 299]])
    np.testing.assert_array_equal(out[0, 4:], 0)


def test_colorize_accepts_non_contiguous_and_int_masks() -> None:
    mask = np.tile(np.arange(4, dtype=np.uint8), (3, 2))[:, ::2]  # a strided view
    np.testing.assert_array_equal(colorize(mask, PALETTE)[0], PALETTE[[0, 2, 0, 2]])
    np.testing.assert_array_equal(colorize(mask.astype(np.int64), PALETTE), colorize(mask, PALETTE))


@pytest.mark.parametrize(
    "mask, palette, match",
    [
        (np.zeros((2, 2, 1), np.uint8), PALETTE, "H x W"),
        (np.zeros((2, 2), np.float32), PALETTE, "integer"),
        (np.full((2, 2), -1, np.int32), PALETTE, "0..65535"),
        (np.zeros((2, 2), np.uint8), np.zeros((4, 4), np.uint8), "num_classes, 3"),
    ],
)
def test_colorize_rejects_bad_input_with_a_hint(mask: np.ndarray, palette: np.ndarray, match: str) -> None:
    with pytest.raises(InputError, match=match):
        colorize(mask, palette)


def test_overlay_blends_with_alpha() -> None:
    image = np.full((4, 6, 3), 100, np.uint8)
    mask = np.zeros((4, 6), np.uint8)
    mask[:, 3:] = 1  # red on the right
    out = overlay(image, mask, PALETTE, alpha=0.5)
    assert out.shape == image.shape and out.dtype == np.uint8
    np.testing.assert_allclose(out[0, 0], [50, 50, 50], atol=1)
    np.testing.assert_allclose(out[0, 5], [178, 50, 50], atol=1)
    np.testing.assert_array_equal(overlay(image, mask, PALETTE, alpha=0.0), image)
    np.testing.assert_array_equal(overlay(image, mask, PALETTE, alpha=1.0), colorize(mask, PALETTE))


def test_overlay_checks_shapes_and_alpha() -> None:
    image = np.zeros((4, 6, 3), np.uint8)
    with pytest.raises(InputError, match="does not match"):
        overlay(image, np.zeros((4, 5), np.uint8), PALETTE)
    with pytest.raises(InputError, match="alpha"):
        overlay(image, np.zeros((4, 6), np.uint8), PALETTE, alpha=1.5)
    with pytest.raises(InputError, match="RGB uint8"):
        overlay(image.astype(np.float32), np.zeros((4, 6), np.uint8), PALETTE)


def test_overlay_is_fast_at_720p() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    mask = rng.integers(0, 19, (720, 1280), dtype=np.uint8)
    palette = make_palette(19)
    overlay(image, mask, palette)
    start = time.perf_counter()
    for _ in range(5):
        overlay(image, mask, palette)
    per_frame = (time.perf_counter() - start) / 5
    # ~3 ms on one core; a generous bound for a shared CI machine, still far below a naive per-pixel loop.
    assert per_frame < 0.05, f"overlay took {per_frame * 1e3:.1f} ms per 720p frame"


def test_side_by_side_puts_mask_right_of_frame() -> None:
    image = np.full((3, 4, 3), 7, np.uint8)
    mask = np.full((3, 4), 2, np.uint8)
    out = side_by_side(image, mask, PALETTE)
    assert out.shape == (3, 8, 3)
    np.testing.assert_array_equal(out[:, :4], image)
    np.testing.assert_array_equal(out[:, 4:], np.broadcast_to(PALETTE[2], (3, 4, 3)))


def test_present_classes() -> None:
    mask = np.array([[0, 3, 3], [7, 0, 3]], np.uint8)
    assert present_classes(mask).tolist() == [0, 3, 7]
    assert present_classes(mask.astype(np.uint16) * 100).tolist() == [0, 300, 700]


def test_draw_legend_shows_present_classes_only() -> None:
    image = np.full((120, 160, 3), 200, np.uint8)
    classes = ("background", "road", "person", "car")
    out = draw_legend(image, classes, PALETTE, [1, 3])
    np.testing.assert_array_equal(image, 200)  # copy by default
    box = out[:40, :80]
    assert (box != 200).any(), "no legend drawn"
    colours = {tuple(c) for c in box.reshape(-1, 3)}
    assert (255, 0, 0) in colours and (0, 0, 255) in colours  # swatches of road and car
    assert (0, 255, 0) not in colours  # person is absent
    np.testing.assert_array_equal(out[60:, 100:], 200)  # the rest of the frame is untouched


def test_draw_legend_summarises_what_does_not_fit() -> None:
    image = np.zeros((48, 64, 3), np.uint8)
    palette = make_palette(50)
    out = draw_legend(image, [f"c{i}" for i in range(50)], palette, range(50))
    assert out.shape == image.shape and (out != 0).any()
    same = draw_legend(image, [f"c{i}" for i in range(50)], palette, [])
    np.testing.assert_array_equal(same, image)


@pytest.mark.parametrize("mode", MODES)
def test_render_modes(mode: str) -> None:
    image = np.full((10, 12, 3), 40, np.uint8)
    mask = np.ones((10, 12), np.uint8)
    out = render(image, mask, PALETTE, mode=mode, classes=("a", "b"), legend=True)
    width = 24 if mode == "side_by_side" else 12
    assert out.shape == (10, width, 3) and out.dtype == np.uint8


def test_render_unknown_mode() -> None:
    with pytest.raises(InputError, match="overlay"):
        render(np.zeros((2, 2, 3), np.uint8), np.zeros((2, 2), np.uint8), PALETTE, mode="heatmap")
