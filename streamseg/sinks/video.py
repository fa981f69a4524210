"""``video:PATH`` — the drawn predictions encoded to a video file (H.264 via PyAV by default).

Choices, each measured with PyAV 18 / FFmpeg 8 (see ``tests/sinks/test_video.py``):

* **Timestamps** come from the source: output pts = the frame's pts rescaled to
  the stream's time base (the first frame's), starting at 0, so the output
  lasts as long as the input and variable frame rate survives. Frames without
  pts (image folders) sit at ``index / fps``. Every packet carries a duration
  (the median of the recent pts steps), which is what makes the *last* frame
  last one frame rather than ~zero: output duration == input duration ± 1
  frame (exact for CFR and for the VFR clip in the tests).
* **Non-monotonic pts** (a reconnect, a looping source) never reach the muxer:
  see :class:`streamseg.sinks._common.Timeline`; the timeline continues one
  frame after the previous frame.
* **MP4/MOV are written fragmented** (``movflags=empty_moov+default_base_moof``,
  a fragment per second, packets flushed as written). Both plain and
  fragmented MP4 play back every frame in PyAV after a proper ``close()``,
  but a plain MP4 killed before ``close()`` has no index and is unreadable,
  while a fragmented one keeps every fragment written so far (all but the
  last second). ``stream.frames`` reads 0 there (count by decoding).
  ``fragmented=False`` writes a classic MP4.
* **No B-frames.** Their reorder delay is what breaks MP4 timing: fragmented
  MP4 has no edit list, so FFmpeg shifts the first frames' pts by the delay
  (``+negative_cts_offsets`` fixes the first fragment only and leaves gaps at
  later fragment starts), and a plain MP4's edit list made a VFR clip two
  frames too short. Without B-frames pts == dts and both are exact; the cost
  is ~10 % more bytes at the same ``crf``.
* **Odd sizes** are padded to the chroma alignment of ``pix_fmt`` (one extra
  column/row for yuv420p) by repeating the edge, so a 65x49 input gives a
  66x50 video with the picture intact at the top-left; ``pix_fmt="yuv444p"``
  keeps odd sizes exactly.
* **A size change mid-stream** (a source reconnecting at another resolution) is
  rescaled to the first size rather than breaking the encoder.
* **Several sources** each get their own file: ``out.mp4`` becomes
  ``out.<source_id>.mp4`` (see :mod:`streamseg.sinks`).

* **The encoder**: ``codec="auto"`` is ``h264_nvenc`` where the GPU has a video encoder (L4, L40S;
  not H100/H200) and the PyAV wheel offers it, else ``libx264``; ``threads`` frame threads
  (``auto``: one per core plus one). ``preset`` and ``crf`` are passed in each encoder's terms.
* **Pictures drawn by a GPU engine** (``Prediction.rendered`` for this sink's ``view``) are
  encoded as they are; the sink draws on the host only when there are none (CPU engines, legends of
  models with more than 256 classes).

* **Disk full** (or a file-size limit): the failing write is a SinkError that
  says so, and a fragmented MP4 is cut back to its last complete fragment, so the
  file still plays every frame written up to about a second before the failure.

``close()`` flushes the encoder and finishes the container; it is idempotent
and runs the same after an exception or a KeyboardInterrupt in the pipeline.
"""

from __future__ import annotations

import errno
import logging
import os
import struct
from pathlib import Path
from typing import Any, BinaryIO

import av

from streamseg import draw
from streamseg.errors import ConfigError, SinkError
from streamseg.sinks.base import BaseSink, SinkContext, ensure_writable_dir
from streamseg.sinks.encode import (
    Timeline, add_video_stream, chroma_alignment, encoder_options, encoder_threads, nvenc_available, parse_fps,
    encoder_frame, fit_frame, picture_size, rendered_frame, sink_view,
)  # fmt: skip
from streamseg.sinks.routing import Routes
from streamseg.types import Prediction

__all__ = ["VideoSink", "FRAGMENTED_MP4_OPTIONS"]

log = logging.getLogger(__name__)

#: Container options for a fragmented MP4 that stays playable if the process dies.
FRAGMENTED_MP4_OPTIONS = {
    "movflags": "empty_moov+default_base_moof",
    "frag_duration": "1000000",  # microseconds: at most ~1 s is lost on a hard kill
    "flush_packets": "1",
}
_MP4_FORMATS = {"mp4", "mov", "ipod", "ismv", "3gp", "3g2", "psp"}


class _Output:
    """One source's container, encoder and timeline."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file: BinaryIO | None = None
        self.container: Any = None
        self.stream: Any = None
        self.timeline: Timeline | None = None
        self.size: tuple[int, int] = (0, 0)  # (w, h) of the first rendered frame
        self.resized_warned = False
        self.full = False  # the disk filled up: nothing more is written, the file was trimmed
        self.fragmented_mp4 = False  # can be cut back to whole fragments (trim_fragmented_mp4)


class VideoSink(BaseSink):
    """Encodes overlays (or masks, or both side by side) of each source to a video file."""

    kind = "video"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        mode: str = "overlay",
        alpha: float = 0.5,
        legend: bool = False,
        codec: str = "auto",
        crf: int = 23,
        preset: str = "veryfast",
        threads: int | str = "auto",
        pix_fmt: str = "yuv420p",
        fps: float = 30,
        fragmented: bool = True,
    ) -> None:
        super().__init__(f"video:{os.fspath(path)}")
        self.target = os.fspath(path)
        self.mode, self.alpha = draw.check_drawing(mode, alpha)
        self.fps = parse_fps(fps)
        self.legend = bool(legend)
        self.codec = codec
        try:
            self.crf = int(crf)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{self.name}: crf must be an integer (0..51), got {crf!r}") from exc
        self.preset = preset
        self.threads = encoder_threads(threads, what=self.name)
        self.pix_fmt = pix_fmt
        self.fragmented = bool(fragmented)
        self._routes: Routes[_Output] = Routes(self.target, "file")
        try:
            self._align = chroma_alignment(pix_fmt)
        except ValueError as exc:
            raise ConfigError(f"{self.name}: unknown pix_fmt {pix_fmt!r}; yuv420p plays everywhere") from exc
        self.view = sink_view(self.mode, self.alpha, self.legend, pix_fmt)

    @property
    def path(self) -> Path:
        return Path(self.target)

    @property
    def outputs(self) -> dict[str, Path]:
        """Where each source's video went (source id -> file)."""
        return {sid: out.path for sid, out in self._routes.outputs.items()}

    # -- open ------------------------------------------------------------------

    def _open(self, context: SinkContext) -> None:
        if self.codec == "auto":
            self.codec = "h264_nvenc" if nvenc_available() and self.pix_fmt == "yuv420p" else "libx264"
            log.info("%s: encoding with %s", self.name, self.codec)
        try:
            av.codec.Codec(self.codec, "w")
        except (ValueError, av.FFmpegError) as exc:
            raise SinkError(f"{self.name}: this FFmpeg has no {self.codec!r} encoder; use codec='libx264'") from exc
        if _guess_format(self.path) is None:
            raise SinkError(
                f"{self.name}: cannot tell the container format from {self.path.name!r}; "
                "end the file name with .mp4 or .mkv"
            )
        parent = Path(self._routes.root).parent if self._routes.templated else self.path.parent
        ensure_writable_dir(parent, f"{self.name}: cannot write into {parent}", "pass a writable path (video:PATH)")

    # -- routing ---------------------------------------------------------------

    def _new_output(self, source_id: str) -> _Output:
        path, move = self._routes.claim(source_id)
        if move is not None:
            self._relocate(*move)
        return self._routes.add(source_id, _Output(Path(path)))

    def _relocate(self, source_id: str, out: _Output, new_path: str) -> None:
        log.info("%s: several sources, source %r now writes %s", self.name, source_id, new_path)
        if out.file is not None:
            try:
                os.replace(out.path, new_path)  # the open file keeps writing under its new name (POSIX)
            except OSError as exc:
                raise SinkError(
                    f"{self.name}: cannot rename {out.path} to {new_path} for source {source_id!r}: {exc}; "
                    f"use a per-source target such as video:{self.path.stem}.{{source}}{self.path.suffix}"
                ) from exc
        out.path = Path(new_path)

    # -- write -----------------------------------------------------------------

    def _start(self, out: _Output, prediction: Prediction, size: tuple[int, int]) -> None:
        """Create the container and encoder for a source's first frame (its size is known only now)."""
        fmt = _guess_format(out.path)
        out.fragmented_mp4 = self.fragmented and fmt in _MP4_FORMATS
        container_options = dict(FRAGMENTED_MP4_OPTIONS) if out.fragmented_mp4 else {"flush_packets": "1"}
        try:
            out.path.parent.mkdir(parents=True, exist_ok=True)
            out.file = open(out.path, "wb", buffering=0)  # FFmpeg buffers; a failed write surfaces at once
        except OSError as exc:
            raise SinkError(
                f"{self.name}: cannot create {out.path}: {exc.strerror or exc}; pass a writable path"
            ) from exc
        timeline = Timeline(self.fps)
        time_base = timeline.start(prediction.frame)
        out.size = (w, h) = size
        options = encoder_options(self.codec, self.crf, self.preset)
        try:
            container = av.open(out.file, "w", format=fmt, options=container_options)
            stream = add_video_stream(
                container, self.codec, (w, h), pix_fmt=self.pix_fmt, fps=self.fps, time_base=time_base,
                gop=max(1, round(2 * self.fps)), options=options, threads=self.threads,
            )  # fmt: skip
        except (av.FFmpegError, ValueError) as exc:
            out.file.close()
            out.file = None
            out.path.unlink(missing_ok=True)
            raise SinkError(f"{self.name}: cannot set up {self.codec}/{self.pix_fmt} for {out.path}: {exc}") from exc
        out.container, out.stream, out.timeline = container, stream, timeline
        if (w, h) != (stream.width, stream.height):
            log.info("%s: %dx%d padded to %dx%d for %s", self.name, w, h, stream.width, stream.height, self.pix_fmt)

    def _write(self, prediction: Prediction) -> bool:
        assert self.context is not None
        frame = prediction.frame
        out = self._routes.outputs.get(frame.source_id) or self._new_output(frame.source_id)
        size = picture_size(frame, self.mode)
        if out.container is None:
            self._start(out, prediction, size)
        elif size != out.size and not out.resized_warned:
            out.resized_warned = True
            log.warning("%s: source %r changed size from %dx%d to %dx%d; rescaling to the first size", self.name,
                        frame.source_id, *out.size, *size)  # fmt: skip
        assert out.timeline is not None
        if out.full:
            raise SinkError(f"{self.name}: {out.path} cannot grow (the disk was full); free space and run again")
        vf = rendered_frame(prediction, self.view, out.size, self.pix_fmt, self._align)
        if vf is None:
            image = draw.render(frame.image, prediction.mask, self.context.palette, mode=self.mode, alpha=self.alpha,
                                classes=self.context.classes, legend=self.legend)  # fmt: skip
            vf = encoder_frame(fit_frame(image, out.size, self._align), self.pix_fmt)
        vf.pts = out.timeline.pts(frame)
        vf.time_base = out.timeline.time_base
        try:
            self._mux(out, out.stream.encode(vf))
        except (av.FFmpegError, OSError) as exc:
            if _is_disk_full(exc):
                raise self._disk_full(out, exc, f"at frame {frame.index} of source {frame.source_id!r}") from exc
            raise SinkError(
                f"{self.name}: encoding frame {frame.index} of source {frame.source_id!r} failed: {exc}"
            ) from exc
        return True

    def _disk_full(self, out: _Output, exc: BaseException, where: str) -> SinkError:
        """Stop writing ``out``, cut it back to what plays, and say what happened."""
        out.full = True
        kept = ""
        if out.fragmented_mp4:
            size = trim_fragmented_mp4(out.path)
            kept = f"; {out.path} was cut to its last complete fragment ({size} bytes) and stays playable"
        reason = getattr(exc, "strerror", None) or str(exc)
        return SinkError(
            f"{self.name}: disk full writing {out.path} {where} ({reason}): free space or write elsewhere{kept}"
        )

    @staticmethod
    def _mux(out: _Output, packets: list[Any]) -> None:
        assert out.timeline is not None
        for packet in packets:
            # Without a duration the muxer gives the last frame ~0 length: the
            # video would end one frame early.
            packet.duration = out.timeline.frame_duration
            out.container.mux(packet)

    # -- close -----------------------------------------------------------------

    def _close(self) -> None:
        first_error: SinkError | None = None
        for out in self._routes.outputs.values():
            try:
                if out.container is not None and not out.full:
                    try:
                        self._mux(out, out.stream.encode(None))
                    finally:
                        out.container.close()
            except (av.FFmpegError, OSError) as exc:
                if _is_disk_full(exc):
                    error = self._disk_full(out, exc, "while finishing it")
                else:
                    error = SinkError(f"{self.name}: could not finish {out.path}: {exc}; the file may be truncated")
                log.error("%s", error)
                first_error = first_error or error
            finally:
                if out.full and out.container is not None:
                    try:  # the trailer cannot be written: release FFmpeg's state, then trim what it appended
                        out.container.close()
                    except (av.FFmpegError, OSError):
                        pass
                out.container = None
                if out.file is not None:
                    out.file.close()
                    out.file = None
                if out.full and out.fragmented_mp4:
                    trim_fragmented_mp4(out.path)
        if first_error is not None:
            raise first_error


def _guess_format(path: Path) -> str | None:
    """FFmpeg's muxer name for ``path``'s extension (``None`` if FFmpeg has none)."""
    # av.open(name, "w") guesses from the name without touching the file.
    try:
        container = av.open(str(path), "w")
    except ValueError:
        return None
    try:
        name = container.format.name
    finally:
        container.close()
    return str(name).split(",")[0]


def _is_disk_full(exc: BaseException) -> bool:
    return getattr(exc, "errno", None) in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def trim_fragmented_mp4(path: str | os.PathLike[str]) -> int:
    """Cut a fragmented MP4 after its last complete ``moov`` or ``moof``+``mdat`` pair; returns the new size.

    Only box headers are read. A write that failed half-way leaves a partial
    box at the end, which some players reject; everything before it is intact.
    """
    keep = 0
    with open(path, "r+b") as f:
        end = f.seek(0, os.SEEK_END)
        pos, last_moof = 0, None
        while pos + 8 <= end:
            f.seek(pos)
            size, kind = struct.unpack(">I4s", f.read(8))
            if size == 1 and pos + 16 <= end:
                (size,) = struct.unpack(">Q", f.read(8))
            if size < 8 or pos + size > end:
                break  # size 0 (runs to EOF), a corrupt header, or a box cut short
            if kind in (b"ftyp", b"moov"):
                keep = pos + size
            elif kind == b"moof":
                last_moof = pos
            elif kind == b"mdat" and last_moof is not None:
                keep, last_moof = pos + size, None
            pos += size
        if keep < end:
            f.truncate(keep)
    return keep
