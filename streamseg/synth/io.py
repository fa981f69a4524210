"""Writers: a synthetic clip as a real H.264 file + mask PNGs, or a still-image dataset.

The H.264 (yuv420p) and JPEG round trips are part of the realism: what a model
sees is compressed, while the masks stay the exact ground truth of the
uncompressed renders.
"""

from __future__ import annotations

import json
import logging
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from streamseg.datasets import mask_file_name
from streamseg.errors import ConfigError, SinkError
from streamseg.synth.scenes import (
    CLASSES,
    IGNORE_INDEX,
    PALETTE,
    SceneClip,
    random_sample,
)

__all__ = ["write_clip", "write_dataset"]

log = logging.getLogger(__name__)


def _count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _fps(fps: float | Fraction) -> Fraction:
    try:
        rate = Fraction(fps).limit_denominator(1_000_000) if not isinstance(fps, str) else Fraction(fps)
    except (TypeError, ValueError, OverflowError, ZeroDivisionError):
        raise ConfigError(f"fps must be a positive number such as 30 or 29.97, got {fps!r}") from None
    if rate <= 0 or not math.isfinite(float(rate)):
        raise ConfigError(f"fps must be a positive number such as 30 or 29.97, got {fps!r}")
    return rate


def _prepare(out_dir: str | Path, subdirs: tuple[str, ...]) -> Path:
    out = Path(out_dir)
    try:
        for sub in subdirs:
            (out / sub).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SinkError(f"cannot create output folder {out}: {exc.strerror or exc}; choose a writable --out") from exc
    return out


def _write_png(path: Path, array: np.ndarray) -> None:
    if not cv2.imwrite(str(path), array):
        raise SinkError(f"could not write {path}: check the folder is writable and the disk is not full")


def _write_json(path: Path, info: dict[str, Any]) -> None:
    try:
        path.write_text(json.dumps(info, indent=2) + "\n")
    except OSError as exc:
        raise SinkError(f"could not write {path}: {exc.strerror or exc}; check the folder is writable") from exc


def _meta(seed: int, size: tuple[int, int]) -> dict[str, Any]:
    return {
        "classes": list(CLASSES),
        "palette": PALETTE.tolist(),
        "ignore_index": IGNORE_INDEX,
        "seed": int(seed),
        "size": [int(size[0]), int(size[1])],
    }


def write_clip(
    out_dir: str | Path,
    *,
    frames: int,
    seed: int,
    size: tuple[int, int] = (640, 360),
    fps: float | Fraction = 30,
    crf: int = 20,
    preset: str = "veryfast",
) -> dict[str, Any]:
    """Render ``frames`` frames of ``SceneClip(seed, size, fps)`` to ``out_dir``.

    Writes ``video.mp4`` (H.264, yuv420p; pts = frame index at time base 1/fps,
    or ``i * den`` at ``1/num`` for a fractional rate ``num/den`` such as 30000/1001),
    ``masks/NNNNNN.png`` (one uint8 class-id PNG per frame, 255 = ignore) and
    ``classes.json``. yuv420p halves chroma resolution, so odd widths/heights are
    rejected with :class:`ConfigError` rather than silently padded or cropped
    (padding would misalign video and masks). Returns the paths and settings.
    """
    frames = _count("frames", frames)
    rate = _fps(fps)
    clip = SceneClip(seed=seed, size=size, fps=float(rate))
    w, h = clip.size
    if w % 2 or h % 2:
        raise ConfigError(f"size {w}x{h} has an odd side; H.264 yuv420p needs even width and height, e.g. {w + w % 2}x{h + h % 2}")
    out = _prepare(out_dir, ("masks",))
    video_path = out / "video.mp4"
    masks_dir = out / "masks"

    import av  # only the clip writer needs PyAV

    time_base = Fraction(rate.denominator, rate.numerator)
    try:
        # MP4 would otherwise pick its own timescale (e.g. 1/10240): keep pts = frame index at 1/fps
        container = av.open(str(video_path), "w", options={"video_track_timescale": str(rate.numerator)})
    except OSError as exc:
        raise SinkError(f"cannot open {video_path} for writing: {exc}; choose a writable --out") from exc
    try:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": str(int(crf)), "preset": preset}
        stream.codec_context.time_base = time_base
        stream.time_base = time_base
        for i, (img, mask) in enumerate(clip.frames(frames)):
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts = i
            vf.time_base = time_base
            for packet in stream.encode(vf):
                container.mux(packet)
            _write_png(masks_dir / mask_file_name(i), mask)
        for packet in stream.encode():
            container.mux(packet)
    except OSError as exc:
        raise SinkError(f"writing {video_path} failed: {exc}; check the disk space and permissions") from exc
    finally:
        container.close()

    info = _meta(clip.seed, (w, h)) | {"frames": frames, "fps": int(rate) if rate.denominator == 1 else float(rate)}
    json_path = out / "classes.json"
    _write_json(json_path, info)
    log.info("wrote %d frames of seed %d at %dx%d to %s", frames, clip.seed, w, h, out)
    return info | {"video": str(video_path), "masks_dir": str(masks_dir), "classes_json": str(json_path)}


def write_dataset(
    out_dir: str | Path,
    *,
    count: int,
    seed: int,
    size: tuple[int, int] = (640, 360),
    jpeg_quality: tuple[int, int] = (60, 95),
) -> dict[str, Any]:
    """Write ``count`` independent :func:`random_sample` scenes as ``images/`` + ``masks/`` PNGs.

    Image ``i`` comes from its own stream keyed by ``(seed, i)``, so a larger
    ``count`` extends a smaller one. Each image is round-tripped through JPEG at a
    random quality in ``jpeg_quality`` (inclusive) to mimic compressed video,
    then stored losslessly as an RGB PNG.
    """
    count = _count("count", count)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
    q_lo, q_hi = (int(q) for q in jpeg_quality)
    if not 1 <= q_lo <= q_hi <= 100:
        raise ConfigError(f"jpeg_quality must be (low, high) with 1 <= low <= high <= 100, got {jpeg_quality!r}")
    out = _prepare(out_dir, ("images", "masks"))
    w = h = 0
    for i in range(count):
        rng = np.random.default_rng([int(seed), i])
        img, mask = random_sample(rng, size)
        h, w = mask.shape
        quality = int(rng.integers(q_lo, q_hi + 1))
        bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise SinkError(f"JPEG encoding failed for image {i}: the OpenCV build lacks JPEG support; reinstall opencv-python")
        _write_png(out / "images" / mask_file_name(i), cv2.imdecode(buf, cv2.IMREAD_COLOR))
        _write_png(out / "masks" / mask_file_name(i), mask)
    info = _meta(seed, (w, h)) | {"count": count}
    json_path = out / "classes.json"
    _write_json(json_path, info)
    log.info("wrote %d images of seed %d at %dx%d to %s", count, seed, w, h, out)
    return info | {
        "images_dir": str(out / "images"),
        "masks_dir": str(out / "masks"),
        "classes_json": str(json_path),
    }
