"""Still images from a folder, a glob pattern or a single file, one Frame per file.

Files are ordered by *natural* sort of their path (``2.png`` before ``10.png``,
case-insensitive, ties broken by the plain string), so numbered frame dumps play
in order with or without zero padding.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from streamseg.errors import SourceError
from streamseg.sources import SOURCES
from streamseg.sources.base import SourceStats
from streamseg.types import Frame

__all__ = ["ImageFolderSource", "IMAGE_EXTENSIONS", "natural_key", "to_rgb8"]

log = logging.getLogger(__name__)

#: Extensions OpenCV reads (lower case); other files in a folder or glob are ignored.
IMAGE_EXTENSIONS = frozenset(
    {
        ".png",
        ".jpg",
        ".jpeg",
        ".jpe",
        ".bmp",
        ".dib",
        ".tif",
        ".tiff",
        ".webp",
        ".ppm",
        ".pgm",
        ".pbm",
        ".pnm",
        ".pfm",
        ".sr",
        ".ras",
        ".jp2",
        ".exr",
        ".hdr",
        ".pic",
        ".avif",
    }
)

_DIGITS = re.compile(r"(\d+)")


def natural_key(path: str) -> tuple[Any, ...]:
    """Sort key: digit runs compare as numbers, the rest case-insensitively (``img2`` < ``img10``)."""
    parts = _DIGITS.split(path)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p.casefold()) for p in parts), path


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


@SOURCES.register("images")
class ImageFolderSource:
    """Every image of a folder (non-recursive), a glob pattern (``**`` recurses) or one image file, once each.

    Only files with an extension in :data:`IMAGE_EXTENSIONS` are taken, in natural
    sort order (see the module doc). Images are read with
    ``IMREAD_ANYDEPTH | IMREAD_ANYCOLOR``: like ``IMREAD_UNCHANGED`` it keeps
    16-bit and gray data, and unlike it, it applies the EXIF orientation of
    phone JPEGs; alpha is dropped. ``pts`` is ``None`` (a folder has no clock).
    Images may differ in size. An unreadable file is a SourceError naming it.
    """

    kind = "images"
    live = False

    def __init__(self, path_or_glob: str | os.PathLike[str], *, source_id: str = "0") -> None:
        self.pattern = os.fspath(path_or_glob)
        self.source_id = str(source_id)
        self.stats = SourceStats()
        self.files: list[Path] = []
        self.frame_count: int | None = None
        self._index = 0
        self._opened = False

    def __repr__(self) -> str:
        return f"ImageFolderSource({self.pattern!r}, source_id={self.source_id!r})"

    def _list(self) -> list[Path]:
        target = self.pattern
        path = Path(target)
        if path.is_dir():
            names = [str(p) for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
            if not names:
                raise SourceError(
                    f"no images in folder {target} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))}); "
                    "check the folder, or pass a glob such as 'frames/*.png'"
                )
        elif path.is_file():
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                raise SourceError(f"{target} is not an image file by its extension; use file:{target} for a video")
            names = [target]
        elif glob.has_magic(target):
            matches = [p for p in glob.glob(target, recursive=True) if os.path.isfile(p)]
            names = [p for p in matches if Path(p).suffix.lower() in IMAGE_EXTENSIONS]
            if not names:
                extra = f" ({len(matches)} matching files, none with an image extension)" if matches else ""
                raise SourceError(f"no images match {target!r}{extra}; check the pattern (quote it in a shell)")
        else:
            raise SourceError(f"image folder or file not found: {target}; check the path")
        return [Path(n) for n in sorted(names, key=natural_key)]

    def open(self) -> None:
        """List the files now (later additions are not seen); an empty match is a SourceError."""
        self.files = self._list()
        self.frame_count = len(self.files)
        self._index = 0
        self._opened = True
        log.debug("source %s: %d images from %s", self.source_id, len(self.files), self.pattern)

    def read(self, timeout: float = 0.0) -> Frame | None:
        """The next image as a Frame, ``None`` after the last one."""
        if not self._opened:
            raise SourceError(f"{self!r}: read() before open() (or after close()); call open() first")
        if self._index >= len(self.files):
            return None
        path = self.files[self._index]
        start = time.perf_counter()
        image = _load(path)
        self.stats.busy_s += time.perf_counter() - start
        frame = Frame(image=image, source_id=self.source_id, index=self._index, capture_time=time.monotonic())
        self._index += 1
        self.stats.frames += 1
        return frame

    def close(self) -> None:
        """Nothing is held open between reads; marks the source closed."""
        self._opened = False


def _load(path: Path) -> np.ndarray:
    """Decode one file to RGB uint8; a SourceError names the file and the reason."""
    import cv2

    try:
        data = np.fromfile(path, dtype=np.uint8)  # unlike cv2.imread, handles any path encoding
    except OSError as exc:
        raise SourceError(f"cannot read image {path}: {exc.strerror or exc}; check it exists and is readable") from exc
    image = cv2.imdecode(data, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR) if data.size else None
    if image is None:
        raise SourceError(f"cannot decode image {path}: empty, truncated or not an image; remove or replace it")
    try:
        return np.ascontiguousarray(to_rgb8(image))
    except TypeError as exc:
        raise SourceError(f"cannot convert image {path}: {exc}; save it as 8- or 16-bit PNG/JPEG") from exc
