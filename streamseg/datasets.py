"""How labelled data is read: images, class-id masks, class names, dataset and clip folders, palettes.

A leaf module (it imports nothing of streamseg but the errors), so the image source, evaluation,
training and the synthetic-data writer all read and name files by the same rules:

- images: any extension in :data:`IMAGE_EXTENSIONS`, decoded to RGB uint8 (:func:`read_image`);
- masks: single-channel PNGs of class ids, ``255`` = ignore (:func:`read_mask`), named by frame
  index in clips (:func:`mask_file_name`) and by the image's stem in datasets (:func:`folder_pairs`);
- class names: ``classes.json`` beside them (:func:`read_class_names`).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from streamseg.errors import ConfigError, SourceError

__all__ = [
    "IMAGE_EXTENSIONS",
    "IGNORE_INDEX",
    "MEAN",
    "STD",
    "folder_pairs",
    "make_palette",
    "mask_file_name",
    "natural_key",
    "read_class_names",
    "read_image",
    "read_mask",
    "to_rgb8",
]

#: Extensions OpenCV reads (lower case); other files in a folder or glob are ignored.
IMAGE_EXTENSIONS = frozenset(
    {
        ".png", ".jpg", ".jpeg", ".jpe", ".bmp", ".dib", ".tif", ".tiff", ".webp", ".ppm", ".pgm",
        ".pbm", ".pnm", ".pfm", ".sr", ".ras", ".jp2", ".exr", ".hdr", ".pic", ".avif",
    }
)  # fmt: skip

#: Label of pixels that count for no class (mmseg's ``ignore_index``).
IGNORE_INDEX = 255

#: RGB normalisation of every SegNeXt checkpoint (ImageNet statistics, mmseg's data preprocessor).
MEAN: tuple[float, float, float] = (123.675, 116.28, 103.53)
STD: tuple[float, float, float] = (58.395, 57.12, 57.375)

_DIGITS = re.compile(r"(\d+)")


def natural_key(path: str) -> tuple[Any, ...]:
    """Sort key: digit runs compare as numbers, the rest case-insensitively (``img2`` < ``img10``)."""
    parts = _DIGITS.split(path)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p.casefold()) for p in parts), path


def mask_file_name(index: int) -> str:
    """A clip's mask file for frame ``index``: ``000042.png`` (what the masks sink and ``streamseg synth`` write)."""
    return f"{index:06d}.png"


def to_rgb8(image: np.ndarray) -> np.ndarray:
    """What ``cv2.imdecode`` returns -> RGB uint8 ``H x W x 3``, C-contiguous.

    Gray -> RGB; BGRA -> RGB (alpha dropped, not composited); 16-bit -> 8-bit
    (``>> 8``); float (EXR/HDR/PFM, assumed 0..1) -> clipped and scaled to 0..255.
    """
    import cv2

    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype.kind == "f":
        image = np.clip(np.nan_to_num(image) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise TypeError(f"unsupported image depth {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    channels = image.shape[2]
    if channels == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2RGB)
    if channels == 2:  # gray + alpha
        return cv2.cvtColor(np.ascontiguousarray(image[:, :, 0]), cv2.COLOR_GRAY2RGB)
    if channels == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _decode(path: Path, flags: int, what: str, error: type[Exception]) -> np.ndarray:
    """Decode one file (any path encoding, unlike ``cv2.imread``); ``error`` names the file and why."""
    import cv2

    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}; check it exists and is readable") from exc
    image = cv2.imdecode(data, flags) if data.size else None
    if image is None:
        raise error(f"cannot decode {what} {path}: empty, truncated or not an image; remove or replace it")
    return image


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """One image file as RGB uint8 ``H x W x 3``.

    Read with ``IMREAD_ANYDEPTH | IMREAD_ANYCOLOR``: like ``IMREAD_UNCHANGED`` it keeps 16-bit and
    gray data, and unlike it, it applies the EXIF orientation of phone JPEGs (:func:`to_rgb8` then
    converts). A file that cannot be read or decoded is a SourceError naming it.
    """
    import cv2

    image = _decode(Path(path), cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR, "image", SourceError)
    try:
        return np.ascontiguousarray(to_rgb8(image))
    except TypeError as exc:
        raise SourceError(f"cannot convert image {path}: {exc}; save it as 8- or 16-bit PNG/JPEG") from exc


def read_mask(path: str | os.PathLike[str]) -> np.ndarray:
    """A class-id mask ``H x W`` (8 or 16 bit). A 3-channel file is taken when its channels are equal
    (grey saved as RGB); a colour image is a ConfigError: colourised masks do not hold class ids."""
    import cv2

    mask = _decode(Path(path), cv2.IMREAD_UNCHANGED, "mask", ConfigError)
    if mask.ndim == 3:
        if not all(np.array_equal(mask[:, :, 0], mask[:, :, c]) for c in range(1, mask.shape[2])):
            raise ConfigError(f"{path} is a colour image; masks must be single-channel class ids")
        mask = np.ascontiguousarray(mask[:, :, 0])
    return mask


def read_class_names(folder: str | os.PathLike[str]) -> list[str] | None:
    """Class names from ``folder/classes.json`` (``{"classes": [...]}``), or None without one."""
    meta = Path(folder) / "classes.json"
    if not meta.exists():
        return None
    try:
        names = json.loads(meta.read_text())["classes"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"cannot read class names from {meta} ({exc}): it needs {{\"classes\": [names]}}") from None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{meta}: \"classes\" must be a non-empty list of names, got {names!r}")
    return names


def folder_pairs(path: str | os.PathLike[str]) -> list[tuple[Path, Path]]:
    """``(image, mask)`` pairs of a dataset folder (``images/`` + ``masks/``, masks named by the image's stem),
    in natural order."""
    root = Path(path)
    images, masks = root / "images", root / "masks"
    if not images.is_dir() or not masks.is_dir():
        raise ConfigError(f"{root} must contain images/ and masks/ folders (masks: PNG class ids, 255 = ignore)")
    pairs = []
    for img in sorted((p for p in images.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS), key=lambda p: natural_key(p.name)):
        mask = masks / (img.stem + ".png")
        if not mask.exists():
            raise ConfigError(f"no mask for {img.name}: expected {mask}")
        pairs.append((img, mask))
    if not pairs:
        raise ConfigError(f"no images found in {images}")
    return pairs


def make_palette(n: int, seed: int = 0) -> np.ndarray:
    """``n`` distinct, saturated RGB colours (deterministic for a given ``seed``).

    Hues step by the golden ratio so neighbouring class ids get far-apart
    colours; saturation and value alternate so that hues which come close
    again for large ``n`` still differ in brightness.
    """
    if n < 0:
        raise ConfigError(f"palette size must be >= 0, got {n}")
    i = np.arange(n, dtype=np.float64)
    offset = np.random.default_rng(seed).random() if seed else 0.0
    hue = (offset + i * 0.6180339887498949) % 1.0
    sat = np.where(i % 2 == 0, 0.85, 0.6)
    val = np.where((i // 2) % 2 == 0, 0.95, 0.7)
    h6 = hue * 6.0  # vectorised HSV -> RGB
    sector = np.floor(h6).astype(np.int64) % 6
    f = h6 - np.floor(h6)
    p, q, t = val * (1 - sat), val * (1 - sat * f), val * (1 - sat * (1 - f))
    choices = [
        np.stack([val, t, p], -1),
        np.stack([q, val, p], -1),
        np.stack([p, val, t], -1),
        np.stack([p, q, val], -1),
        np.stack([t, p, val], -1),
        np.stack([val, p, q], -1),
    ]
    rgb = np.choose(sector[:, None], choices) if n else np.zeros((0, 3))
    return np.round(rgb * 255).astype(np.uint8)
