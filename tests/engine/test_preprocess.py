"""mmseg's test-time pre- and post-processing, checked against plain computations."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from streamseg.engine.preprocess import (
    Geometry,
    masks_from_logits,
    postprocess,
    preprocess,
    rescale_size,
    resize_on_host,
    resize_uint8,
    slide_logits,
)


def test_keep_ratio_rule_is_mmcvs():
    # factor = min(long/long side, short/short side); size = int(x * f + 0.5)
    assert rescale_size(360, 640, (2048, 512)) == (512, 910)
    assert rescale_size(1080, 1920, (1280, 720)) == (720, 1280)
    assert rescale_size(100, 100, (2048, 512)) == (512, 512)


def test_geometry_pads_to_the_divisor_and_slide_does_not():
    geo = Geometry.for_frame(180, 320, (512, 288))
    assert geo.frame == (180, 320) and geo.resized == (288, 512) and geo.padded == (288, 512)
    geo = Geometry.for_frame(90, 161, None)
    assert geo.resized == (90, 161) and geo.padded == (96, 192)
    assert Geometry.for_frame(90, 161, None, divisor=1).padded == (90, 161)


def test_host_resize_is_opencvs_bilinear_on_uint8():
    img = np.random.default_rng(0).integers(0, 256, (45, 80, 3), dtype=np.uint8)
    geo = Geometry.for_frame(45, 80, (160, 90))
    (out,) = resize_on_host([img], geo)
    np.testing.assert_array_equal(out, cv2.resize(img, (160, 90), interpolation=cv2.INTER_LINEAR))
    assert resize_on_host([img], Geometry.for_frame(45, 80, None))[0] is img  # no resize: untouched


def test_preprocess_normalises_and_pads_with_zero():
    img = torch.full((1, 30, 40, 3), 200, dtype=torch.uint8)
    mean, std = torch.tensor([100.0, 50.0, 0.0]), torch.tensor([10.0, 5.0, 2.0])
    x = preprocess(img, Geometry.for_frame(30, 40, None), mean, std)
    assert x.shape == (1, 3, 32, 64) and x.is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_allclose(x[0, :, :30, :40].amax((1, 2)), [10.0, 30.0, 100.0])
    assert float(x[0, :, 30:].abs().max()) == 0.0 and float(x[0, :, :, 40:].abs().max()) == 0.0


@pytest.mark.parametrize("classes", [3, 8, 19, 150])
def test_chunked_resize_and_argmax_equal_the_whole_tensor(classes):
    """The docstring's claim: resizing classes in chunks with a running (max, argmax) is exactly argmax."""
    gen = torch.Generator().manual_seed(classes)
    logits = torch.randn(2, classes, 12, 20, generator=gen)
    logits[:, 1] = logits[:, 0]  # exact ties keep the lowest id, as torch.argmax does
    geo = Geometry.for_frame(83, 150, (160, 90))
    whole = F.interpolate(logits, size=geo.padded, mode="bilinear", align_corners=False)
    whole = whole[:, :, : geo.resized[0], : geo.resized[1]]
    whole = F.interpolate(whole, size=geo.frame, mode="bilinear", align_corners=False)
    for budget in (1 << 26, 2 * 83 * 150 * 3, 1):  # chunks of 8 (CPU default), of 3 classes, of one class
        ids, conf = postprocess(logits, geo, confidence=True, max_elements=budget)
        torch.testing.assert_close(ids, whole.argmax(1), rtol=0, atol=0)
        torch.testing.assert_close(conf, whole.softmax(1).amax(1), rtol=1e-5, atol=1e-6)


def test_masks_from_logits_types_and_finite_flag():
    logits = torch.randn(1, 300, 4, 4)
    geo = Geometry.for_frame(32, 32, None)
    mask, conf, raw, finite = masks_from_logits(logits, geo, from_padded=True, confidence=False, logits_out=True, wide=True)
    assert mask.dtype == torch.int16 and conf is None and raw.shape == (1, 300, 4, 4) and bool(finite)
    assert int(mask.numpy().view(np.uint16).max()) < 300
    logits[0, 5, 1, 1] = float("nan")
    *_, finite = masks_from_logits(logits[:, :8], geo, from_padded=True, confidence=False, logits_out=False, wide=False)
    assert not bool(finite)


def test_one_window_slide_is_the_plain_forward():
    x = torch.randn(1, 3, 64, 96)

    def forward(window):  # a "model" at 1/8 resolution that remembers where it looked
        return F.avg_pool2d(window[:, :2], 8)

    out = slide_logits(x, crop=128, stride=64, num_classes=2, forward=forward)
    expected = F.interpolate(forward(x), size=(64, 96), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out, expected)
    tiled = slide_logits(x, crop=48, stride=32, num_classes=2, forward=forward)
    assert tiled.shape == (1, 2, 64, 96) and torch.isfinite(tiled).all()


def test_device_resize_is_opencvs_bit_for_bit():
    """The torch resize a GPU engine uses gives OpenCV's fixed-point result on uint8 (down, up, 2x, 1-pixel)."""
    rng = np.random.default_rng(5)
    sizes = [((720, 1280), (512, 910)), ((1080, 1920), (540, 960)), ((360, 640), (512, 910)), ((7, 5), (13, 11)),
             ((1, 9), (4, 3)), ((64, 64), (128, 128))]  # fmt: skip
    sizes += [(tuple(rng.integers(1, 160, 2)), tuple(rng.integers(1, 240, 2))) for _ in range(40)]
    for (h, w), (th, tw) in sizes:
        img = rng.integers(0, 256, (int(h), int(w), 3), dtype=np.uint8)
        want = cv2.resize(img, (int(tw), int(th)), interpolation=cv2.INTER_LINEAR)
        got = resize_uint8(torch.from_numpy(img)[None], (int(th), int(tw)))[0].numpy()
        np.testing.assert_array_equal(got, want, err_msg=f"{w}x{h} -> {tw}x{th}")


def test_preprocess_of_full_size_frames_equals_the_host_resized_path():
    img = np.random.default_rng(2).integers(0, 256, (90, 160, 3), dtype=np.uint8)
    geo = Geometry.for_frame(90, 160, (256, 144))
    mean, std = torch.tensor([123.675, 116.28, 103.53]), torch.tensor([58.395, 57.12, 57.375])
    on_device = preprocess(torch.from_numpy(img)[None], geo, mean, std)
    on_host = preprocess(torch.from_numpy(resize_on_host([img], geo)[0])[None], geo, mean, std)
    assert torch.equal(on_device, on_host)
