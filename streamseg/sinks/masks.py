"""``masks:DIR`` — class-id masks as PNG files (one per frame) or one incremental NPZ.

Layout (one source)::

    DIR/000000.png          class ids, 8-bit (16-bit PNG when the model has > 255 classes)
    DIR/color/000000.png    colourised copy, with colorize=True
    DIR/masks.npz           with format="npz": arrays keyed "000000", "000001", ...

Files are named by ``frame.index`` zero-padded to 6 digits. With several
source ids every source gets a subfolder, ``DIR/<source_id>/...`` (see
:mod:`streamseg.sinks` for the routing rule; ``masks:out/{source}`` asks for
it from the start).

Crash safety: a PNG is written under a temporary name and ``os.replace``d,
so a file with a final name is always complete. The NPZ is a zip with one
entry per frame whose central directory is rewritten after every frame, so
the file is a valid NPZ between writes even if the run is killed or the sink
is never closed. That rewrite costs ~2 µs per stored frame, so NPZ suits
clips (thousands of frames); for long streams prefer PNG.
"""

from __future__ import annotations

import logging
import os
import warnings
import zipfile
from array import array
from pathlib import Path

import cv2
import numpy as np

from streamseg.datasets import mask_file_name
from streamseg.draw import colorize as colorize_mask
from streamseg.errors import ConfigError, SinkError
from streamseg.sinks.base import BaseSink, SinkContext, ensure_writable_dir
from streamseg.sinks.routing import PLACEHOLDER, Routes
from streamseg.types import Prediction

__all__ = ["MaskSink"]

log = logging.getLogger(__name__)

FORMATS = ("png", "npz")
NPZ_NAME = "masks.npz"
COLOR_DIR = "color"
_NPZ_WARN_AT = 10_000


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` is either absent/old or complete, never half-written."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _png_params() -> list[int]:
    """Run-length deflate without row filters: masks are flat runs, so this is 5x faster than the
    defaults and the files are half the size (measured on 720p masks: 1.3 ms, 4 KB against 7 ms, 10 KB)."""
    params = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
    if hasattr(cv2, "IMWRITE_PNG_FILTER"):  # OpenCV >= 4.10
        params += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]
    return params


def _encode_png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", image, _png_params())
    if not ok:  # pragma: no cover - cv2 fails only on unsupported dtypes, which we never pass
        raise SinkError(f"PNG encoding failed for a {image.dtype} {image.shape} array")
    return buf.tobytes()


class _NpzWriter:
    """An NPZ (zip of ``.npy``) that is complete after every ``add``: the central directory is rewritten each time."""

    def __init__(self, path: Path, compress: bool = True) -> None:
        self.path = path
        self._file = open(path, "wb", buffering=0)  # unbuffered: a failed write leaves nothing pending
        method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        self._zip = zipfile.ZipFile(self._file, "w", method, compresslevel=1 if compress else None)
        self.count = 0

    def add(self, key: str, array: np.ndarray) -> None:
        entries, start = len(self._zip.filelist), getattr(self._zip, "start_dir", None)
        try:
            with warnings.catch_warnings():
                # A repeated frame index adds a second entry; readers take the last one, like an overwritten PNG.
                warnings.filterwarnings("ignore", "Duplicate name", UserWarning)
                with self._zip.open(f"{key}.npy", "w", force_zip64=array.nbytes > 2**31) as f:
                    np.lib.format.write_array(f, np.ascontiguousarray(array), allow_pickle=False)
            self._checkpoint()
        except OSError:
            if start is not None:
                self._roll_back(entries, start)
            raise
        self.count += 1
        if self.count == _NPZ_WARN_AT:
            log.warning(
                "%s holds %d frames; each frame now rewrites a large zip index: "
                "use format='png' for long runs",
                self.path,
                self.count,
            )

    def _checkpoint(self) -> None:
        # zipfile writes the central directory only in close(). ZipFile keeps the
        # next entry's offset in ``start_dir`` and seeks there before each new
        # entry, so writing the end record now (and overwriting it with the next
        # entry later) leaves a complete file between writes.
        writer = getattr(self._zip, "_write_end_record", None)
        if writer is None or not hasattr(self._zip, "start_dir"):  # pragma: no cover - other Pythons
            self._zip.close()
            self._zip = zipfile.ZipFile(self._file, "a", self._zip.compression)
            self._file.flush()
            return
        self._zip.fp.seek(self._zip.start_dir)
        writer()
        self._file.flush()

    def _roll_back(self, entries: int, start: int) -> None:
        """Forget a half-written entry (disk full) and restore the previous end record: the file stays valid."""
        for info in self._zip.filelist[entries:]:
            self._zip.NameToInfo.pop(info.filename, None)
        del self._zip.filelist[entries:]
        self._zip.start_dir = start
        self._zip._writing = False  # type: ignore[attr-defined]
        try:
            self._file.truncate(start)
            self._checkpoint()
        except OSError as exc:
            log.error("%s: could not restore the zip index after a failed write: %s", self.path, exc)

    def close(self) -> None:
        try:
            self._zip.close()
        finally:
            self._file.close()


class _Output:
    """One source's directory and its writers."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.indices = array("q")  # frame indices written as PNG, compact, for relocation
        self.npz: _NpzWriter | None = None


class MaskSink(BaseSink):
    """Writes every prediction's class-id mask (and optionally a colourised copy) into ``directory``."""

    kind = "masks"

    def __init__(self, directory: str | os.PathLike[str], *, colorize: bool = False, format: str = "png") -> None:
        super().__init__(f"masks:{os.fspath(directory)}")
        if format not in FORMATS:
            raise ConfigError(f"masks sink: unknown format {format!r}; use one of {', '.join(FORMATS)}")
        self.target = os.fspath(directory)
        self.colorize = bool(colorize)
        self.format = format
        self._routes: Routes[_Output] = Routes(self.target, "folder")
        self._dtype: type[np.uint8] | type[np.uint16] = np.uint8

    @property
    def directory(self) -> Path:
        return Path(self.target)

    def _open(self, context: SinkContext) -> None:
        self._dtype = np.uint16 if context.num_classes > 255 else np.uint8
        self._ensure_dir(Path(self._routes.root))

    def _ensure_dir(self, directory: Path) -> None:
        ensure_writable_dir(
            directory, f"{self.name}: cannot write masks into {directory}", "pass a writable directory (masks:DIR)"
        )

    def _new_output(self, source_id: str) -> _Output:
        directory, move = self._routes.claim(source_id)
        if move is not None:
            self._relocate(*move)
        out = _Output(Path(directory))
        self._ensure_dir(out.directory)
        if self.colorize:
            self._ensure_dir(out.directory / COLOR_DIR)
        return self._routes.add(source_id, out)

    def _relocate(self, source_id: str, out: _Output, new_name: str) -> None:
        """A second source appeared: move the first source's files into its own subfolder."""
        new_dir = Path(new_name)
        log.info("%s: several sources, moving source %r's masks into %s", self.name, source_id, new_dir)
        self._ensure_dir(new_dir)
        try:
            for index in out.indices:
                names = [mask_file_name(index)] if self.format == "png" else []
                if self.colorize:
                    names.append(f"{COLOR_DIR}/{mask_file_name(index)}")
                for rel in names:
                    dest = new_dir / rel
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(out.directory / rel, dest)
            if out.npz is not None:
                os.replace(out.npz.path, new_dir / NPZ_NAME)  # the open file follows the rename (POSIX)
                out.npz.path = new_dir / NPZ_NAME
            color = out.directory / COLOR_DIR
            if self.colorize and color.is_dir() and not any(color.iterdir()):
                color.rmdir()
        except OSError as exc:
            raise SinkError(
                f"{self.name}: cannot move source {source_id!r}'s masks into {new_dir}: {exc}; "
                f"use a per-source target such as masks:{os.path.join(self.target, PLACEHOLDER)}"
            ) from exc
        out.directory = new_dir
        out.indices = array("q")

    def _mask(self, prediction: Prediction) -> np.ndarray:
        mask = np.asarray(prediction.mask)
        if mask.ndim != 2:
            raise SinkError(f"{self.name}: mask must be H x W class ids, got shape {mask.shape}")
        if mask.dtype == self._dtype:
            return mask
        if self._dtype == np.uint8 and mask.size and int(mask.max()) > 255:
            raise SinkError(
                f"{self.name}: mask holds class id {int(mask.max())} but the model declares "
                f"{self.context.num_classes if self.context else '?'} classes; 8-bit PNG cannot store it"
            )
        return mask.astype(self._dtype)

    def _write(self, prediction: Prediction) -> bool:
        frame = prediction.frame
        out = self._routes.outputs.get(frame.source_id) or self._new_output(frame.source_id)
        mask = self._mask(prediction)
        png = mask_file_name(frame.index)
        try:
            if self.format == "png":
                _atomic_write(out.directory / png, _encode_png(mask))
            else:
                if out.npz is None:
                    out.npz = _NpzWriter(out.directory / NPZ_NAME)
                out.npz.add(Path(png).stem, mask)
            if self.colorize:
                assert self.context is not None
                rgb = colorize_mask(mask, self.context.palette)
                rel = f"{COLOR_DIR}/{png}"
                _atomic_write(out.directory / rel, _encode_png(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)))
        except OSError as exc:
            raise SinkError(
                f"{self.name}: writing frame {frame.index} of source {frame.source_id!r} into "
                f"{out.directory} failed: {exc.strerror or exc}; check free space and permissions"
            ) from exc
        if len(self._routes.outputs) == 1 and not self._routes.templated:
            out.indices.append(frame.index)  # only needed until a second source shows up
        return True

    def _close(self) -> None:
        errors: list[BaseException] = []
        for out in self._routes.outputs.values():
            if out.npz is not None:
                try:
                    out.npz.close()
                except OSError as exc:  # keep closing the others
                    errors.append(exc)
        if errors:
            raise SinkError(f"{self.name}: closing masks.npz failed: {errors[0]}; the file may lack its last frame")

    @property
    def outputs(self) -> dict[str, Path]:
        """Where each source's masks went (source id -> directory)."""
        return {sid: out.directory for sid, out in self._routes.outputs.items()}
