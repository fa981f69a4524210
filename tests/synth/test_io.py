"""Writers: a real H.264 clip with per-frame masks, and a JPEG-degraded image dataset."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from streamseg.errors import ConfigError, SinkError
from streamseg.synth import (
    CLASSES,
    IGNORE_INDEX,
    PALETTE,
    SceneClip,
    random_sample,
    write_clip,
    write_dataset,
)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def read_mask(path: Path) -> np.ndarray:
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert mask is not None, path
    return mask


@pytest.mark.timeout(60)
def test_write_clip_video_masks_and_classes(tmp_path: Path) -> None:
    info = write_clip(tmp_path / "clip", frames=12, seed=5, size=(160, 96), fps=10)
    out = tmp_path / "clip"
    assert info["video"] == str(out / "video.mp4") and info["frames"] == 12

    clip = SceneClip(seed=5, size=(160, 96), fps=10)
    truth = list(clip.frames(12))
    with av.open(str(out / "video.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        decoded = [(f.pts, f.time_base, f.to_ndarray(format="rgb24")) for f in container.decode(stream)]
    assert len(decoded) == 12
    assert [pts for pts, _, _ in decoded] == list(range(12))
    assert decoded[0][1] == Fraction(1, 10)
    for (_, _, img), (gen, _) in zip(decoded, truth):
        assert img.shape == (96, 160, 3)
        assert psnr(img, gen) > 25
    # the decoded frame matches its own render best (catches off-by-one frames and swapped channels)
    assert psnr(decoded[6][2], truth[6][0]) > psnr(decoded[6][2], truth[7][0])
    assert psnr(decoded[6][2], truth[6][0]) > psnr(decoded[6][2], truth[6][0][..., ::-1]) + 3

    masks = sorted((out / "masks").iterdir())
    assert [p.name for p in masks] == [f"{i:06d}.png" for i in range(12)]
    for path, (_, gen_mask) in zip(masks, truth):
        mask = read_mask(path)
        assert mask.dtype == np.uint8 and mask.shape == (96, 160)
        assert np.array_equal(mask, gen_mask)

    meta = json.loads((out / "classes.json").read_text())
    assert meta == {
        "classes": list(CLASSES),
        "palette": PALETTE.tolist(),
        "ignore_index": IGNORE_INDEX,
        "seed": 5,
        "frames": 12,
        "fps": 10,
        "size": [160, 96],
    }


def test_write_clip_rejects_odd_sizes(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="even"):
        write_clip(tmp_path / "odd", frames=2, seed=0, size=(161, 96))
    assert not (tmp_path / "odd").exists()


def test_write_clip_rejects_bad_counts(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="frames"):
        write_clip(tmp_path / "x", frames=0, seed=0, size=(64, 48))
    with pytest.raises(ConfigError, match="fps"):
        write_clip(tmp_path / "x", frames=2, seed=0, size=(64, 48), fps=-1)


def test_unwritable_output_is_sink_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(SinkError, match="writable"):
        write_clip(blocker / "clip", frames=2, seed=0, size=(64, 48))
    with pytest.raises(SinkError, match="writable"):
        write_dataset(blocker / "data", count=2, seed=0, size=(64, 48))


@pytest.mark.timeout(60)
def test_write_dataset(tmp_path: Path) -> None:
    info = write_dataset(tmp_path / "data", count=5, seed=3, size=(160, 96))
    out = tmp_path / "data"
    images = sorted((out / "images").iterdir())
    masks = sorted((out / "masks").iterdir())
    assert [p.name for p in images] == [p.name for p in masks] == [f"{i:06d}.png" for i in range(5)]
    for i, (ip, mp) in enumerate(zip(images, masks)):
        gen_img, gen_mask = random_sample(np.random.default_rng([3, i]), (160, 96))
        bgr = cv2.imread(str(ip), cv2.IMREAD_UNCHANGED)
        assert bgr.shape == (96, 160, 3) and bgr.dtype == np.uint8
        img = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        assert psnr(img, gen_img) > 25  # JPEG-degraded but the same picture, RGB on disk
        assert not np.array_equal(img, gen_img)  # and it did go through JPEG
        assert psnr(img, gen_img) > psnr(img, gen_img[..., ::-1])
        assert np.array_equal(read_mask(mp), gen_mask)
    meta = json.loads((out / "classes.json").read_text())
    assert meta["classes"] == list(CLASSES) and meta["count"] == 5 and meta["size"] == [160, 96]
    assert meta["ignore_index"] == 255 and meta["palette"] == PALETTE.tolist() and meta["seed"] == 3
    assert info["count"] == 5

    # a larger count extends a smaller one, byte for byte
    write_dataset(tmp_path / "more", count=6, seed=3, size=(160, 96))
    for name in ("000000.png", "000004.png"):
        assert (tmp_path / "more" / "images" / name).read_bytes() == (out / "images" / name).read_bytes()
