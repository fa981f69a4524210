"""mmseg 1.x's test-time pre- and post-processing, batched on the device; every resize lives here.

Pre: keep-ratio resize to the test scale (bilinear on uint8 exactly as mmseg: OpenCV for frames in
host memory, :func:`resize_on_host`; on a GPU the same fixed-point arithmetic in torch, bit for bit,
:func:`resize_uint8`), RGB mean/std normalisation, zero padding
bottom/right to a multiple of 32. Post: logits -> padded size -> crop -> frame size (bilinear,
align_corners=False) -> argmax (:func:`masks_from_logits`). Classes are processed in chunks so a
150-class 4K frame never materialises gigabytes of logits. :func:`slide_logits` is mmseg's slide
mode: overlapping windows, logits averaged where they overlap.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "rescale_size",
    "padded_size",
    "Geometry",
    "resize_on_host",
    "resize_uint8",
    "preprocess",
    "postprocess",
    "masks_from_logits",
    "slide_logits",
]


def rescale_size(height: int, width: int, scale: tuple[int, int]) -> tuple[int, int]:
    """mmcv's keep-ratio rule: factor min(long/long side, short/short side), size int(x*f + 0.5)."""
    long_edge, short_edge = max(scale), min(scale)
    factor = min(long_edge / max(height, width), short_edge / min(height, width))
    return int(height * factor + 0.5), int(width * factor + 0.5)


def padded_size(height: int, width: int, divisor: int = 32) -> tuple[int, int]:
    return math.ceil(height / divisor) * divisor, math.ceil(width / divisor) * divisor


@dataclass(frozen=True)
class Geometry:
    """Sizes of one group of same-sized frames through the pipeline."""

    frame: tuple[int, int]  # original H, W
    resized: tuple[int, int]  # after keep-ratio resize
    padded: tuple[int, int]  # model input (multiple of the divisor; == resized for slide inference)

    @property
    def logits_valid(self) -> tuple[int, int]:
        """Rows and columns of the model's 1/8 logits that cover the resized frame, not the padding."""
        return -(-self.resized[0] // 8), -(-self.resized[1] // 8)

    @classmethod
    def for_frame(cls, height: int, width: int, scale: tuple[int, int] | None, divisor: int = 32) -> "Geometry":
        resized = rescale_size(height, width, scale) if scale else (height, width)
        padded = padded_size(*resized, divisor) if divisor > 1 else resized
        return cls((height, width), resized, padded)


def resize_on_host(images: list[Any], geo: Geometry) -> list[Any]:
    """mmseg's own keep-ratio resize for frames in host memory: OpenCV bilinear on uint8 (mmcv.imresize).

    OpenCV's fixed-point result differs from a rounded float resize by one grey level on ~10 % of
    pixels, which moved 0.5 % of fp32 mask pixels against mmseg; resizing the same way makes the
    fp32 masks identical. Frames on a GPU are resized there, bit for bit the same (:func:`resize_uint8`).
    """
    import cv2

    if geo.resized == geo.frame or any(isinstance(i, Tensor) and i.device.type != "cpu" for i in images):
        return images
    size = (geo.resized[1], geo.resized[0])
    return [cv2.resize(np.asarray(i), size, interpolation=cv2.INTER_LINEAR) for i in images]


# OpenCV's fixed-point bilinear: weights in 1/2048 (INTER_RESIZE_COEF_BITS = 11).
_COEF_SCALE = 2048


def _linear_taps(src: int, dst: int, *, clamp_weights: bool) -> tuple[np.ndarray, ...]:
    """Source indices and fixed-point weights of each output position, computed as OpenCV does.

    Positions are float32 ``(d + 0.5) * scale - 0.5``; weights are rounded to 1/2048. Columns past
    the edge take the edge pixel at full weight; rows keep their fractional weights and only clamp
    the row index (OpenCV's two passes differ there, which is what makes upscales differ otherwise).
    """
    scale = 1.0 / (np.float64(dst) / np.float64(src))
    pos = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    first = np.floor(pos).astype(np.int64)
    frac = (pos - first.astype(np.float32)).astype(np.float32)
    if clamp_weights:
        frac[first < 0], first[first < 0] = 0, 0
        edge = first >= src - 1
        frac[edge], first[edge] = 0, src - 1
    w0 = np.rint((np.float32(1) - frac) * np.float32(_COEF_SCALE)).astype(np.int32)
    w1 = np.rint(frac * np.float32(_COEF_SCALE)).astype(np.int32)
    return np.clip(first, 0, src - 1), np.clip(first + 1, 0, src - 1), w0, w1


@functools.lru_cache(maxsize=64)
def _taps_on(src: int, dst: int, clamp_weights: bool, device: torch.device) -> tuple[Tensor, ...]:
    # made once per size and device: an upload per batch would synchronise a CUDA stream
    return tuple(torch.from_numpy(a).to(device) for a in _linear_taps(src, dst, clamp_weights=clamp_weights))


def resize_uint8(images: Tensor, size: tuple[int, int]) -> Tensor:
    """``(B, H, W, C)`` uint8 -> ``(B, h, w, C)`` uint8, bit-exact with ``cv2.resize(..., INTER_LINEAR)``.

    OpenCV's 8-bit path: a horizontal pass in integers (weights x 2048), then a vertical one that
    rounds as ``((w0*(s0>>4))>>16 + (w1*(s1>>4))>>16 + 2) >> 2``. Integer arithmetic, so every
    device gives the same grey levels, and mmseg's masks stay exact where frames live on a GPU.
    """
    _, src_h, src_w, _ = images.shape
    h, w = size
    if (h, w) == (src_h, src_w):
        return images
    y0, y1, v0, v1 = _taps_on(src_h, h, False, images.device)
    x0, x1, u0, u1 = _taps_on(src_w, w, True, images.device)
    u0, u1 = u0.view(1, 1, -1, 1), u1.view(1, 1, -1, 1)

    def across(rows: Tensor) -> Tensor:
        rows = rows.to(torch.int32)
        return (rows[:, :, x0] * u0 + rows[:, :, x1] * u1) >> 4

    out = ((v0.view(1, -1, 1, 1) * across(images[:, y0])) >> 16) + ((v1.view(1, -1, 1, 1) * across(images[:, y1])) >> 16)
    return ((out + 2) >> 2).clamp_(0, 255).to(torch.uint8)


def preprocess(images: Tensor, geometry: Geometry, mean: Tensor, std: Tensor) -> Tensor:
    """``(B, H, W, 3)`` uint8 RGB on the device -> normalised, padded ``(B, 3, Hp, Wp)`` float32, channels_last.

    Images at the frame size are resized here (:func:`resize_uint8`, OpenCV's own result); images
    already at the resized size (CPU engines resize host frames with OpenCV) go straight on.
    """
    if tuple(images.shape[1:3]) != geometry.resized:
        images = resize_uint8(images, geometry.resized)
    x = images.permute(0, 3, 1, 2).float()  # NHWC storage == NCHW channels_last view
    x = (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    ph, pw = geometry.padded[0] - geometry.resized[0], geometry.padded[1] - geometry.resized[1]
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), value=0.0)
    return x.contiguous(memory_format=torch.channels_last)


# Classes resized together. Eight keep a chunk in cache without paying the per-chunk overhead
# too often: 150 classes to a 512x512 frame took 75 ms in chunks of 8 against 163 ms all at once
# (720p: 310 against 618 ms; 2-core CPU); for 8 classes nothing changes. GPUs resize all at once.
_CHUNK_CLASSES = 8


def _resize_chunk(logits: Tensor, geometry: Geometry, from_padded: bool) -> Tensor:
    """Resize float32 logits as mmseg does: to the padded input size, crop the pad, then to the frame size."""
    if from_padded:
        logits = F.interpolate(logits, size=geometry.padded, mode="bilinear", align_corners=False)
        logits = logits[:, :, : geometry.resized[0], : geometry.resized[1]]
    if tuple(logits.shape[2:]) != geometry.frame:
        logits = F.interpolate(logits, size=geometry.frame, mode="bilinear", align_corners=False)
    return logits


def postprocess(
    logits: Tensor,
    geometry: Geometry,
    *,
    from_padded: bool = True,
    confidence: bool = False,
    max_elements: int = 1 << 26,
) -> tuple[Tensor, Tensor | None]:
    """Class ids ``(B, H, W)`` int64 (and max softmax probability when asked) at the frame size.

    Bilinear resizing is per channel, so resizing classes in chunks and keeping a
    running (max, argmax) gives exactly ``argmax`` of the full tensor; ties keep
    the lowest class id, like ``torch.argmax``. ``max_elements`` bounds a chunk's memory
    for very large frames.
    """
    # NCHW as in mmseg: the channels_last kernel rounds differently from one channel count to
    # another, the NCHW one handles every class plane alike, so chunks give mmseg's exact values.
    logits = logits.float().contiguous()
    b, k = logits.shape[:2]
    h, w = geometry.frame
    per_chunk = _CHUNK_CLASSES if logits.device.type == "cpu" else k  # measured on CPUs only
    chunk = max(1, min(k, per_chunk, max_elements // max(1, b * h * w)))
    best = ids = lse = None
    for start in range(0, k, chunk):
        part = _resize_chunk(logits[:, start : start + chunk], geometry, from_padded)
        part_max, part_ids = part.max(dim=1)
        if best is None:
            best, ids = part_max, part_ids
        else:
            better = part_max > best
            best = torch.where(better, part_max, best)
            ids = torch.where(better, part_ids + start, ids)
        if confidence:
            part_lse = torch.logsumexp(part, dim=1)
            lse = part_lse if lse is None else torch.logaddexp(lse, part_lse)
    conf = torch.exp(best - lse) if confidence else None
    return ids, conf


def masks_from_logits(
    logits: Tensor, geo: Geometry, *, from_padded: bool, confidence: bool, logits_out: bool, wide: bool
) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor]:
    """The model's 1/8 logits -> (class ids at the frame's size, confidence, raw logits, "all finite" flag).

    Ids are uint8, or int16 holding uint16 bits when ``wide`` (more than 255 classes); the flag stays
    a device tensor so that checking it does not synchronise here.
    """
    logits = logits.float()
    ids, conf = postprocess(logits, geo, from_padded=from_padded, confidence=confidence)
    mask = ids.to(torch.int16 if wide else torch.uint8)
    raw = None
    if logits_out:
        h8, w8 = geo.logits_valid if from_padded else logits.shape[2:]
        raw = logits[:, :, :h8, :w8]
    return mask, conf, raw, torch.isfinite(logits).all()


def slide_logits(x: Tensor, crop: int, stride: int, num_classes: int, forward: Callable[[Tensor], Tensor]) -> Tensor:
    """mmseg's slide inference: ``forward`` on overlapping ``crop`` windows, logits averaged where they overlap."""
    b, _, h, w = x.shape
    preds = x.new_zeros((b, num_classes, h, w))
    count = x.new_zeros((1, 1, h, w))
    rows = max(h - crop + stride - 1, 0) // stride + 1
    cols = max(w - crop + stride - 1, 0) // stride + 1
    for r in range(rows):
        for c in range(cols):
            y2, x2 = min(r * stride + crop, h), min(c * stride + crop, w)
            y1, x1 = max(y2 - crop, 0), max(x2 - crop, 0)
            window = x[:, :, y1:y2, x1:x2].contiguous(memory_format=torch.channels_last)
            out = F.interpolate(forward(window).float(), size=(y2 - y1, x2 - x1), mode="bilinear", align_corners=False)
            preds[:, :, y1:y2, x1:x2] += out
            count[:, :, y1:y2, x1:x2] += 1
    return preds / count
