"""Drawing on the engine's device (streamseg.render) against the host drawing the sinks do (streamseg.draw).

The torch code is the same on a GPU and a CPU, so these run it on the CPU."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from streamseg import draw
from streamseg.datasets import make_palette
from streamseg.draw import View
from streamseg.errors import ConfigError
from streamseg.render import Renderer, render_views, rgb_to_i420
from streamseg.sinks.encode import fit_frame

SIZES = [(48, 64), (49, 65), (1, 1), (2, 3), (120, 161), (360, 640)]


def _scene(h: int, w: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = rng.integers(0, classes, (h, w)).astype(np.uint16 if classes > 256 else np.uint8)
    return image, mask


@pytest.mark.parametrize("h, w", SIZES)
def test_i420_is_opencvs_bit_for_bit_odd_sides_padded_like_the_host(h: int, w: int) -> None:
    image, _ = _scene(h, w, 2, seed=h * w)
    host = cv2.cvtColor(fit_frame(image, (w, h), (2, 2)), cv2.COLOR_RGB2YUV_I420)
    got = rgb_to_i420(torch.from_numpy(image)[None])[0].numpy()
    np.testing.assert_array_equal(got, host)


@pytest.mark.parametrize("mode", draw.MODES)
@pytest.mark.parametrize("alpha", [0.0, 0.35, 0.5, 1.0])
@pytest.mark.parametrize("h, w", [(49, 65), (120, 161)])
def test_views_within_one_grey_level_of_the_host_drawing(mode: str, alpha: float, h: int, w: int) -> None:
    palette = make_palette(9)
    image, mask = _scene(h, w, 12, seed=7)  # ids 9..11 are past the palette: black on both sides
    view_rgb, view_yuv = View(mode, alpha, "rgb24"), View(mode, alpha, "yuv420p")
    got = render_views(image, mask, palette, [view_rgb, view_yuv])
    host = draw.render(image, mask, palette, mode=mode, alpha=alpha)
    assert got[view_rgb].shape == host.shape and got[view_rgb].dtype == np.uint8
    assert np.abs(got[view_rgb].astype(int) - host.astype(int)).max() <= 1
    host_yuv = cv2.cvtColor(fit_frame(host, (host.shape[1], host.shape[0]), (2, 2)), cv2.COLOR_RGB2YUV_I420)
    assert got[view_yuv].shape == host_yuv.shape
    assert np.abs(got[view_yuv].astype(int) - host_yuv.astype(int)).max() <= 1


def test_wide_masks_look_up_every_id() -> None:
    palette = make_palette(300)
    image, mask = _scene(20, 30, 400, seed=3)
    view = View("mask", 0.5, "rgb24")
    got = render_views(image, mask, palette, [view])[view]
    np.testing.assert_array_equal(got, draw.colorize(mask, palette))


def test_one_renderer_serves_a_batch_and_several_views() -> None:
    palette = make_palette(5)
    scenes = [_scene(24, 32, 5, seed=s) for s in range(3)]
    images = torch.from_numpy(np.stack([s[0] for s in scenes]))
    masks = torch.from_numpy(np.stack([s[1] for s in scenes]))
    views = [View(), View("side_by_side", 0.5, "rgb24")]
    out = Renderer(palette).render(images, masks, views)
    assert out[views[0]].shape == (3, 36, 32) and out[views[1]].shape == (3, 24, 64, 3)
    for i, (image, mask) in enumerate(scenes):
        np.testing.assert_array_equal(out[views[1]][i].numpy(), draw.side_by_side(image, mask, palette))


def test_a_bad_view_is_refused_when_built() -> None:
    with pytest.raises(ConfigError, match="mode"):
        View("sketch")
    with pytest.raises(ConfigError, match="alpha"):
        View("overlay", 2.0)
    with pytest.raises(ConfigError, match="pix_fmt"):
        View("overlay", 0.5, "nv12")


@pytest.mark.parametrize("h, w", [(48, 64), (91, 161), (720, 1280), (30, 500)])
@pytest.mark.parametrize("present", [1, 4, 40])  # 40 classes overflow every height here: "+N more"
def test_legend_on_the_device_within_one_grey_level(h: int, w: int, present: int) -> None:
    rng = np.random.default_rng(h + present)
    classes = [f"class name {i}" for i in range(40)]
    classes[3] = "gyp jay"  # descenders reach into the next row
    palette = make_palette(40)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    ids = rng.choice(40, present, replace=False)
    mask = ids[rng.integers(0, present, (h, w))].astype(np.uint8)
    for mode in ("overlay", "side_by_side"):
        view = View(mode, 0.5, "rgb24", legend=True)
        got = render_views(image, mask, palette, [view], classes=classes)[view]
        want = draw.render(image, mask, palette, mode=mode, classes=classes, legend=True)
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
        assert (got != draw.render(image, mask, palette, mode=mode)).any()  # a legend was drawn at all


def test_legends_of_huge_class_lists_are_left_to_the_sinks() -> None:
    few, many = Renderer(make_palette(19), [f"c{i}" for i in range(19)]), Renderer(make_palette(300), [f"c{i}" for i in range(300)])
    assert few.can_render(View(legend=True)) and few.can_render(View())
    assert not many.can_render(View(legend=True)) and many.can_render(View())
