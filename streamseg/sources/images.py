"""Still images from a folder, a glob pattern or a single file, one Frame per file.

Files are ordered by *natural* sort of their path (``2.png`` before ``10.png``,
case-insensitive, ties broken by the plain string), so numbered frame dumps play
in order with or without zero padding.
"""

from __future__ import annotations

import glob
import logging
import os
import time
from pathlib import Path


from streamseg.datasets import IMAGE_EXTENSIONS, natural_key, read_image
from streamseg.errors import SourceError
from streamseg.sources.base import BaseSource
from streamseg.types import Frame

__all__ = ["ImageFolderSource"]

log = logging.getLogger(__name__)

class ImageFolderSource(BaseSource):
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
        super().__init__(source_id)
        self.pattern = os.fspath(path_or_glob)
        self.files: list[Path] = []
        self.frame_count: int | None = None

    def _describe(self) -> str:
        return self.pattern

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
        self._check_open()
        if self._index >= len(self.files):
            return None
        start = time.perf_counter()
        image = read_image(self.files[self._index])
        self.stats.busy_s += time.perf_counter() - start
        return self._emit(image)

    def close(self) -> None:
        """Nothing is held open between reads; marks the source closed."""
        self._opened = False
