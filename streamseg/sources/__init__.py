"""Where frames come from: files, cameras, network streams, image folders, Python code.

``open_source("rtsp://cam/stream")`` picks the kind from the URI (or an explicit
``"kind:target"`` prefix) and returns an un-opened :class:`Source`. Built-in kinds are
listed in :data:`SOURCES` and imported on first use; third-party packages add kinds through
the ``streamseg.sources`` entry-point group. PyAV and OpenCV load only when a source opens.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from streamseg.datasets import IMAGE_EXTENSIONS
from streamseg.errors import ConfigError
from streamseg.registry import Registry
from streamseg.sources.base import BaseSource, Source, SourceStats

#: kind name -> factory ``(target, *, source_id, **options) -> Source``; built-ins load on first use.
SOURCES: Registry[Source] = Registry(
    "streamseg.sources",
    {
        "file": "streamseg.sources.file:VideoFileSource",
        "url": "streamseg.sources.network:NetworkSource",
        "camera": "streamseg.sources.camera:CameraSource",
        "images": "streamseg.sources.images:ImageFolderSource",
        "iterable": "streamseg.sources.memory:iterable_source",
        "push": "streamseg.sources.memory:push_source",
    },
)

# The built-in classes, for ``from streamseg.sources import PushSource``; none imports PyAV or OpenCV at import time.
from streamseg.sources.camera import CameraSource  # noqa: E402
from streamseg.sources.file import VideoFileSource  # noqa: E402
from streamseg.sources.images import ImageFolderSource  # noqa: E402
from streamseg.sources.memory import IterableSource, PushSource  # noqa: E402
from streamseg.sources.network import NetworkSource  # noqa: E402

__all__ = [
    "SOURCES",
    "BaseSource",
    "CameraSource",
    "ImageFolderSource",
    "IterableSource",
    "NetworkSource",
    "PushSource",
    "Source",
    "SourceStats",
    "VideoFileSource",
    "open_source",
    "resolve_uri",
]

_KIND_PREFIX = re.compile(r"^([A-Za-z][A-Za-z0-9_.+-]*):(.*)$", re.DOTALL)
_DEVICE = re.compile(r"^/dev/video\d+$")


def resolve_uri(uri: str | os.PathLike[str]) -> tuple[str, str]:
    """Split ``uri`` into ``(kind, target)`` without opening anything.

    Order: an explicit ``kind:target`` naming a known kind; a URL (``scheme://``);
    an integer or ``/dev/video*`` (camera); a directory or glob pattern (images);
    an existing file with an image extension (images); any other path (file).
    ``word:target`` with an unknown ``word`` is a :class:`ConfigError` naming the
    closest kind, unless the whole string is an existing path.
    """
    text = os.fspath(uri)
    if not text.strip():
        raise ConfigError("empty source URI; give a file, a folder, a camera index or a URL")
    match = _KIND_PREFIX.match(text)
    if match and len(match.group(1)) > 1:  # one letter is a Windows drive (C:\...)
        kind, target = match.group(1), match.group(2)
        if kind in SOURCES.names():
            if kind == "file" and target.startswith("//"):  # file:///abs/path.mp4
                target = target[2:]
            return kind, target
        if target.startswith("//"):
            return "url", text
        if not os.path.exists(text):
            SOURCES.get(kind)  # raises ConfigError with the closest kind
    if "://" in text:
        return "url", text
    if text.isdigit() or _DEVICE.match(text):
        return "camera", text
    path = Path(text)
    if path.is_dir() or (not path.exists() and glob.has_magic(text)):
        return "images", text
    if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
        return "images", text
    return "file", text


def open_source(uri: Any, *, source_id: str = "0", **options: Any) -> Source:
    """Build (not open) the source for ``uri``; ``options`` go to its constructor.

    ``uri`` is usually a string (see :func:`resolve_uri`); an ``int`` is a camera
    index and any other non-string iterable (a list of arrays, a generator) becomes
    an :class:`IterableSource`.
    """
    if isinstance(uri, Source):
        return uri
    if isinstance(uri, bool):
        raise ConfigError(f"source URI must be a string, a path, a camera index or an iterable, not {uri!r}")
    if isinstance(uri, int):
        return SOURCES.get("camera")(uri, source_id=source_id, **options)
    if not isinstance(uri, (str, os.PathLike)):
        if isinstance(uri, Iterable):
            return SOURCES.get("iterable")(uri, source_id=source_id, **options)
        raise ConfigError(
            f"source URI must be a string, a path, a camera index or an iterable, not {type(uri).__name__}"
        )
    kind, target = resolve_uri(uri)
    factory = SOURCES.get(kind)
    try:
        return factory(target, source_id=source_id, **options)
    except TypeError as exc:  # an option the kind does not take
        if "argument" not in str(exc):
            raise
        raise ConfigError(f"bad options for {kind} source {target!r}: {exc}; see help({factory.__name__})") from exc
