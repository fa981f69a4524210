"""Per-source outputs of one sink, decided in one place for the video, masks and RTSP sinks.

The rule (documented in :mod:`streamseg.sinks`): a sink writes its target as given while it has
seen one ``source_id``. When a second id arrives, every source gets its own output and the first
source's output moves aside to its per-source name, so a multi-source run never mixes sources and
a one-source run keeps the plain name. A ``{source}`` placeholder in the target asks for
per-source outputs from the first frame on. Routes only decide names; each sink opens and moves
its own outputs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Generic, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

__all__ = ["PLACEHOLDER", "Routes", "safe_source_id"]

PLACEHOLDER = "{source}"

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

T = TypeVar("T")


def safe_source_id(source_id: str) -> str:
    """``source_id`` as one file-name/URL-path component (a URL or path as id would nest or escape)."""
    cleaned = _UNSAFE.sub("_", source_id).strip("._")
    return cleaned or "source"


class Routes(Generic[T]):
    """Which output each source writes to. ``style`` names per-source outputs: ``file`` (``out.mp4`` ->
    ``out.<id>.mp4``), ``folder`` (``dir`` -> ``dir/<id>``) or ``url`` (``rtsp://h/live`` -> ``.../live/<id>``)."""

    def __init__(self, target: str, style: Literal["file", "folder", "url"]) -> None:
        self.target, self.style = target, style
        self.templated = PLACEHOLDER in target  # per-source outputs from the first frame on
        self.outputs: dict[str, T] = {}  # source id -> the sink's output object

    @property
    def root(self) -> str:
        """What exists before any source: the target, or its part before the placeholder."""
        return (self.target.split(PLACEHOLDER)[0] or ".") if self.templated else self.target

    def name_for(self, source_id: str, *, per_source: bool) -> str:
        if self.templated:
            return self.target.replace(PLACEHOLDER, safe_source_id(source_id))
        if not per_source:
            return self.target
        safe = safe_source_id(source_id)
        if self.style == "file":
            path = Path(self.target)
            return str(path.with_name(f"{path.stem}.{safe}{path.suffix}"))
        if self.style == "folder":
            return str(Path(self.target) / safe)
        parts = urlsplit(self.target)
        return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/" + safe))

    def claim(self, source_id: str) -> tuple[str, tuple[str, T, str] | None]:
        """Name the output of a source seen for the first time, and ``(first id, its output, its new name)``
        when the first source's output must move aside now (this is the second source)."""
        move = None
        if len(self.outputs) == 1 and not self.templated:
            ((first_id, first),) = self.outputs.items()
            move = (first_id, first, self.name_for(first_id, per_source=True))
        return self.name_for(source_id, per_source=bool(self.outputs)), move

    def add(self, source_id: str, output: T) -> T:
        self.outputs[source_id] = output
        return output
